"""The files a run and a balance plan are made of: one module per format.

Each module owns its file's name, its keys or columns with their types, how it is written
and how it is read back and checked. A damaged or hand-edited file is refused when it is
read, with one line naming the file and the key (:class:`~datacheck.errors.BadDataError`,
exit 3), so no command fails half-way on it.

====================  ==================  =============================================
file                  module              reader / writer
====================  ==================  =============================================
``run.json``          :mod:`.run_info`    :class:`RunInfo` (``read`` / ``write``)
``summary.json``      :mod:`.summary`     :func:`read_summary` / :func:`write_summary`
``findings.parquet``  :mod:`.findings`    :func:`check_findings`, :func:`details_object`
``model_outputs.npz`` :mod:`.model_outputs` :func:`check_outputs_file`, :func:`read_outputs`
``plan.json``         :mod:`.plan`        :class:`PlanInfo` (``read`` / ``write``), :func:`read_plan`
====================  ==================  =============================================

Any JSON object datacheck writes is read through :func:`.json_object.read_json`.
"""

#: What every refusal of a damaged run file tells the user to do.
RUN_DAMAGED = "the run is damaged, run datacheck audit again"
