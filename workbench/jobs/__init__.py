"""Jobs: parameterized notebooks executed by papermill, recorded in the catalog, and the
schedule that runs them (daily segmentation, exports before each delivery)."""

from workbench.jobs.runner import JOBS, JobFailedError, JobLockedError, JobRun, Jobs, JobSpec

__all__ = ["JOBS", "JobFailedError", "JobLockedError", "JobRun", "JobSpec", "Jobs"]
