"""The batched compute core: decoding images in workers and per-sample features."""
