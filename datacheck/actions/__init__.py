"""Repairs: pure functions from (manifest, findings, options) to (new manifest, changes).

Nothing here writes to a source dataset; the commands write new manifests, plans and files
into folders the user names.
"""
