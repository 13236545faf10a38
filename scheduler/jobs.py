"""The glue to APScheduler 3.x: it only decides *when*; our executor hands each due (coalesced)
fire time to the Scheduler (service.py) instead of calling a job, and a job's id is
"app:task" (app names never hold ':')."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job


class CronExecutor(BaseExecutor):  # type: ignore[misc]
    """Hands (job id, scheduled time) to the Scheduler instead of calling the job."""

    def __init__(self, fire: Callable[[str, datetime], None]) -> None:
        super().__init__()
        self._fire = fire

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        try:
            self._fire(job.id, run_times[-1])  # coalesced: the latest due time
        except Exception as exc:
            self._run_job_error(job.id, exc, exc.__traceback__)
        else:
            self._run_job_success(job.id, [])


def placeholder() -> None:
    """APScheduler wants a callable per job; CronExecutor never calls it."""


def job_id(app: str, task: str) -> str:
    return f"{app}:{task}"  # app names never hold ':'


def key_of(job: str) -> tuple[str, str]:
    app, _, task = job.partition(":")
    return app, task
