"""Claiming a queued background job, and holding it while it runs.

The claim is a conditional UPDATE (``queued`` -> ``running``), which makes a duplicate delivery harmless. It
also records in the job's ``progress`` the attempt number, the worker (``host:pid``) and a first
``heartbeat_at``; the task keeps the heartbeat fresh while it runs (``JobLease.beat``, or a
``JobHeartbeat`` thread), so that the sweeper (annotation.services.jobs_recovery) can tell a job whose
worker died from one that is merely long. Every write of a running job's state goes through its lease: a
conditional UPDATE on (``running``, this attempt), so an attempt the sweeper gave up on cannot overwrite
what came after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import models
from django.utils import timezone

from annotation.models import JobStatus
from annotation.services.worker_liveness import HeartbeatThread, seconds_setting, worker_name

logger = logging.getLogger(__name__)

Job = TypeVar("Job", bound=models.Model)
Result = TypeVar("Result")


def jobs_heartbeat_seconds() -> float:
    """How often a running import, export or bulk job at least refreshes its heartbeat."""
    return seconds_setting("JOBS_HEARTBEAT_SECONDS", 10.0)


def jobs_stale_after_seconds() -> float:
    """A running import, export or bulk job whose heartbeat is older than this has lost its worker."""
    return seconds_setting("JOBS_STALE_AFTER_SECONDS", 120.0)


class JobLost(RuntimeError):
    """This attempt no longer holds its job (the sweeper found its worker gone and requeued or failed it)."""


@dataclass
class JobLease(Generic[Job]):
    """One attempt's hold on a running job."""

    model: type[Job]
    job_id: int
    attempt: int
    progress: dict[str, Any] = field(default_factory=dict)

    def held(self) -> models.QuerySet:
        """The job's row, as long as this attempt still holds it."""
        return self.model.objects.filter(
            id=self.job_id, status=JobStatus.RUNNING, progress__attempt=self.attempt
        )

    def beat(self, **fields: Any) -> bool:
        """Refresh the heartbeat, writing ``fields`` with it; False when this attempt lost the job."""
        self.progress["heartbeat_at"] = timezone.now().isoformat()
        return bool(self.held().update(progress=dict(self.progress), **fields))

    def beat_or_stop(self, **fields: Any) -> None:
        """``beat``, and raise JobLost when the job is no longer this attempt's."""
        if not self.beat(**fields):
            raise JobLost(
                f"{self.model._meta.verbose_name} {self.job_id} attempt {self.attempt} lost its claim"
            )

    def finish(self, status: str, **fields: Any) -> bool:
        """running -> ``status`` (succeeded/failed), only while this attempt holds the job."""
        return bool(self.held().update(status=status, finished_at=timezone.now(), **fields))

    def run(self, work: Callable[[], Result], *, reraise: bool = False) -> tuple[bool, Result | None]:
        """Run this attempt's ``work``: ``(True, its result)`` when it returned, ``(False, None)`` when it
        raised. JobLost (the sweeper gave the attempt up for dead) is logged and the job left to whoever took
        it over; any other exception is logged and recorded on the job (failed, with the error), so the worker
        stays up; ``reraise`` then raises it again for a caller that reports it itself."""
        try:
            return True, work()
        except JobLost as exc:
            logger.warning("%s", exc)
        except Exception as exc:
            logger.exception("%s %s failed", self.model._meta.verbose_name, self.job_id)
            self.finish(JobStatus.FAILED, error=str(exc)[:5000])
            if reraise:
                raise
        return False, None


def queued_job_claim(model: type[Job], job_id: int) -> tuple[Job | None, bool]:
    """Move job ``job_id`` from queued to running. Returns ``(job, True)`` when this call claimed it, and
    ``(job or None, False)`` when a duplicate delivery finds it already run, running or missing."""
    job, lease = queued_job_lease(model, job_id)
    return job, lease is not None


def queued_job_lease(model: type[Job], job_id: int) -> tuple[Job | None, JobLease[Job] | None]:
    """``queued_job_claim`` that also returns the lease of the claimed attempt (None when not claimed)."""
    current = model.objects.filter(id=job_id).first()
    if current is None or current.status != JobStatus.QUEUED:
        logger.info(
            "%s %s is not queued (already run or missing); skipping", model._meta.verbose_name, job_id
        )
        return current, None
    now = timezone.now()
    # A requeued job keeps its attempt number and the record of the attempts that were lost.
    progress = dict(current.progress or {})
    progress.update(
        attempt=int(progress.get("attempt", 1)), worker=worker_name(), heartbeat_at=now.isoformat()
    )
    claimed = model.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, progress=progress
    )
    if not claimed:  # another delivery claimed it between the read and the update
        logger.info("%s %s was claimed by another delivery; skipping", model._meta.verbose_name, job_id)
        return model.objects.filter(id=job_id).first(), None
    return model.objects.get(id=job_id), JobLease(model, job_id, progress["attempt"], progress)


class JobHeartbeat(HeartbeatThread):
    """Refreshes a lease's heartbeat every ``JOBS_HEARTBEAT_SECONDS`` from its own thread (and database
    connection), for work that has no frequent progress points of its own; ``lost`` turns True once the
    job is no longer this attempt's. Use as a context manager around the work."""

    def __init__(self, lease: JobLease, interval: Callable[[], float] = jobs_heartbeat_seconds) -> None:
        super().__init__(f"{lease.model._meta.model_name}-heartbeat-{lease.job_id}", interval)
        self.lease = lease

    def beat(self) -> bool:
        return self.lease.beat()

    def __enter__(self) -> JobHeartbeat:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
