"""Status: phases from observed runs, and write-back of ``status:`` blocks into files.

Pure functions on data and bytes; committing and pushing the edited files is
``reconciler.source``'s job (this package never imports ``git``).
"""

from .changes import merge_conditions, status_changed
from .phases import RunPhase, job_phase, phase_of, pipelinerun_phase
from .writeback import StatusEditError, apply_status, normalize_status, only_status_changed, read_status, render_status_block

__all__ = ["RunPhase", "StatusEditError", "apply_status", "job_phase", "merge_conditions", "normalize_status",
           "only_status_changed", "phase_of", "pipelinerun_phase", "read_status", "render_status_block", "status_changed"]
