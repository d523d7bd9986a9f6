"""The learning loop's training half: request a training job, train a model version, promote or roll back.

State machine (every move is a conditional UPDATE, so a duplicate or late task delivery cannot move a job
twice):

    TrainingJob  queued ──claim──▶ running ──▶ succeeded | failed
    ModelVersion training ──▶ ready ──activate──▶ ready + is_active      (or training ──▶ failed)

A running job carries an ``attempt`` number, its ``worker`` (host:pid) and a ``heartbeat_at`` in its
progress. Celery redelivers a training task whose worker died (``acks_late`` + ``reject_on_worker_lost``);
the redelivered task finds the job ``running``, sees that the owner is gone (dead pid on this host, or a
heartbeat older than ``TRAINING_STALE_AFTER_SECONDS``) and takes the job over with attempt + 1, after
removing the dead attempt's half-written artifact. A training whose owner is alive is left alone.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.jobs import model_train_enqueue
from annotation.models import (
    OPEN_JOB_STATUSES,
    JobStatus,
    ModelState,
    ModelVersion,
    ReviewAction,
    ReviewEvent,
    TrainingJob,
    TrainingTrigger,
)
from annotation.services.training.artifacts import (
    _artifact_thresholds,
    _remove_partial_artifacts,
)
from annotation.services.training.data import (
    VALID_FRACTION,
    TrainingData,
)
from annotation.services.training.promotion import _activate, promotion_decision
from annotation.services.worker_liveness import (
    HeartbeatThread,
    heartbeat_of,
    seconds_setting,
    worker_gone,
    worker_lost_message,
    worker_name,
)

logger = logging.getLogger(__name__)

# What counts as a review toward automatic retraining: a card submit, and each product of a bulk decision.
REVIEW_DECISIONS = (ReviewAction.SUBMIT, ReviewAction.BULK)

# The job's log column keeps the last this-many characters (a GPU run logs a line per progress step).
LOG_MAX_CHARS = 200_000


def heartbeat_seconds() -> float:
    """How often a running training writes its progress and heartbeat."""
    return seconds_setting("TRAINING_HEARTBEAT_SECONDS", 5.0)


def stale_after_seconds() -> float:
    """A running job whose heartbeat is older than this is considered lost."""
    return seconds_setting("TRAINING_STALE_AFTER_SECONDS", 120.0)


class TrainingAborted(RuntimeError):
    """This attempt lost the job (another worker took it over, or it was failed as stale)."""


# --------------------------------------------------------------------------------------------------
# Requesting a training (debounced: the partial unique index allows one queued/running job)
# --------------------------------------------------------------------------------------------------


def training_job_request(*, trigger: str, user=None, enqueue: bool = True) -> TrainingJob:
    """Queue a training job, or return the job already queued or running (at most one is open).

    ``enqueue=False`` leaves the job queued for the caller to run in-process (``manage.py train``).
    A queued job that is returned again is re-sent to the broker: a lost message (broker restarted
    without persistence) cannot strand it, and a duplicate delivery is a no-op.
    """
    if trigger not in TrainingTrigger.values:
        raise ValueError(f"trigger must be one of {', '.join(TrainingTrigger.values)}, got {trigger!r}")
    training_jobs_fail_stale()
    with transaction.atomic():
        open_job = TrainingJob.objects.filter(status__in=OPEN_JOB_STATUSES).first()
        if open_job is None:
            reviews = ReviewEvent.objects.filter(action__in=REVIEW_DECISIONS).count()
            try:
                with transaction.atomic():
                    job = TrainingJob.objects.create(
                        trigger=trigger,
                        created_by=user if user is not None and user.is_authenticated else None,
                        reviews_at_request=reviews,
                        progress={"phase": "queued"},
                    )
            except IntegrityError:  # a concurrent request won the race: return its job
                open_job = TrainingJob.objects.filter(status__in=OPEN_JOB_STATUSES).first()
                if open_job is None:
                    raise
            else:
                if enqueue:
                    model_train_enqueue(job.id)
                logger.info("training job %s requested (%s)", job.id, trigger)
                return job
        if enqueue and open_job.status == JobStatus.QUEUED:
            model_train_enqueue(open_job.id)
        return open_job


def reviews_submitted_hook() -> TrainingJob | None:
    """Call after a review submit (or a bulk decision) commits: requests a training once
    ``RETRAIN_AFTER_REVIEWS`` new submits and bulk decisions (one per product) have accumulated since the last training started (0 disables). Returns the job when it asked for one."""
    threshold = int(settings.RETRAIN_AFTER_REVIEWS)
    if threshold <= 0:
        return None
    last = TrainingJob.objects.order_by("-created_at", "-id").first()
    if last is not None and last.status in OPEN_JOB_STATUSES:
        return None  # debounced: the open job will see these reviews (it reads the data when it starts)
    submits = ReviewEvent.objects.filter(action__in=REVIEW_DECISIONS)
    if last is not None:
        submits = submits.filter(created_at__gt=last.started_at or last.created_at)
    if submits.count() < threshold:
        return None
    return training_job_request(trigger=TrainingTrigger.AUTO)


def training_jobs_fail_stale() -> int:
    """Fail running jobs whose worker stopped sending heartbeats (e.g. the whole worker machine died and
    the broker will not redeliver before its visibility timeout). Returns how many were failed."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds())
    failed = 0
    for job in TrainingJob.objects.filter(status=JobStatus.RUNNING):
        beat = heartbeat_of(job.progress)
        if beat is not None and beat >= cutoff:
            continue
        if beat is None and job.started_at and job.started_at >= cutoff:
            continue
        attempt = job.progress.get("attempt")
        message = worker_lost_message(job.progress, job.started_at)
        if _job_finish(job.id, attempt, JobStatus.FAILED, error=message, phase="failed"):
            failed += 1
            _version_fail(job.model_version_id)
            logger.warning("training job %s: %s", job.id, message)
    return failed


def training_jobs_reap() -> int:
    """The periodic reaper (beat, every ``TRAINING_REAP_SECONDS``): fail the running jobs whose worker is
    gone, then let automatic retraining go on, since it waited while that job was open (the reviews
    submitted meanwhile count towards the next one). Returns how many jobs were failed."""
    failed = training_jobs_fail_stale()
    if failed:
        reviews_submitted_hook()
    return failed


# --------------------------------------------------------------------------------------------------
# Training a version
# --------------------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """What the heartbeat thread writes to the job; the training thread only updates it in memory."""

    job_id: int
    attempt: int
    worker: str
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    step: int = 0
    total: int | None = None
    phase_started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)
    device: str = ""
    lost: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def log(self, message: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        with self.lock:
            self.lines.append(f"{stamp} {message}")
        logger.info("training job %s: %s", self.job_id, message)

    def update(self, phase: str, step: int, total: int | None) -> None:
        if self.lost:
            raise TrainingAborted(f"training job {self.job_id} attempt {self.attempt} lost its claim")
        with self.lock:
            if phase != self.phase:
                self.phase_started = time.monotonic()
                self.lines.append(f"{timezone.now():%H:%M:%S} phase {phase}")
            self.phase, self.step, self.total = phase, int(step), total

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            in_phase = now - self.phase_started
            eta = None
            if self.total and self.step > 0:
                eta = round(in_phase / self.step * max(0, self.total - self.step), 1)
            return {
                "phase": self.phase,
                "step": self.step,
                "total": self.total,
                "elapsed_s": round(now - self.started, 1),
                "eta_s": eta,
                "device": self.device,
                "attempt": self.attempt,
                "worker": self.worker,
                "heartbeat_at": timezone.now().isoformat(),
            }

    def log_text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)[-LOG_MAX_CHARS:]


class _Heartbeat(HeartbeatThread):
    """Writes progress, log and heartbeat every few seconds; notices when this attempt lost the job."""

    def __init__(self, progress: _Progress, listener: Callable[[dict[str, Any]], None] | None) -> None:
        super().__init__(f"training-heartbeat-{progress.job_id}", heartbeat_seconds)
        self.progress = progress
        self.listener = listener

    def beat(self) -> bool:
        snapshot = self.progress.snapshot()
        try:
            updated = TrainingJob.objects.filter(
                id=self.progress.job_id, status=JobStatus.RUNNING, progress__attempt=self.progress.attempt
            ).update(progress=snapshot, log=self.progress.log_text())
        except Exception:  # a database hiccup must not kill the training; the next beat retries
            logger.exception("training job %s: heartbeat failed", self.progress.job_id)
            return True
        if not updated:
            self.progress.lost = True
        if self.listener is not None:
            self.listener(snapshot)
        return bool(updated)


def _worker_name() -> str:
    return worker_name()


def _owner_gone(job: TrainingJob) -> bool:
    """Whether the worker that holds a running job is certainly gone (dead pid here, or a stale heartbeat)."""
    return worker_gone(job.progress, job.started_at, stale_after=stale_after_seconds(), claiming=True)


def _training_job_claim(job_id: int) -> tuple[TrainingJob, int] | None:
    """queued → running (attempt 1), or take over a running job whose worker is gone (attempt + 1)."""
    now = timezone.now()
    first = {"phase": "starting", "attempt": 1, "worker": _worker_name(), "heartbeat_at": now.isoformat()}
    if TrainingJob.objects.filter(id=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, progress=first
    ):
        return TrainingJob.objects.get(id=job_id), 1
    # Not queued: finished (duplicate delivery), unknown, or running. A running job is retried only when
    # its worker is gone; while its heartbeat is fresh it is someone else's (wait a little for it to go
    # stale, as a redelivery after a crash on another machine arrives before the heartbeat ages out).
    deadline = time.monotonic() + 2 * stale_after_seconds()
    while True:
        job = TrainingJob.objects.filter(id=job_id).first()
        if job is None:
            logger.warning("training job %s does not exist", job_id)
            return None
        if job.status != JobStatus.RUNNING:
            logger.info("training job %s is %s: nothing to do", job_id, job.status)
            return None
        if _owner_gone(job):
            attempt = int(job.progress.get("attempt", 1))
            progress = {
                "phase": "restarting",
                "attempt": attempt + 1,
                "worker": _worker_name(),
                "heartbeat_at": timezone.now().isoformat(),
            }
            log = f"{job.log}\nattempt {attempt} on {job.progress.get('worker', '?')} was lost; restarting"
            if TrainingJob.objects.filter(
                id=job_id, status=JobStatus.RUNNING, progress__attempt=attempt
            ).update(progress=progress, started_at=timezone.now(), log=log[-LOG_MAX_CHARS:]):
                logger.warning("training job %s: took over from lost attempt %s", job_id, attempt)
                return TrainingJob.objects.get(id=job_id), attempt + 1
            continue
        if time.monotonic() > deadline:
            logger.info("training job %s is running on live worker %s", job_id, job.progress.get("worker"))
            return None
        time.sleep(heartbeat_seconds())


def _job_finish(
    job_id: int,
    attempt: int | None,
    status: str,
    *,
    error: str = "",
    phase: str,
    log: str | None = None,
    model_version: ModelVersion | None = None,
) -> bool:
    """running → succeeded/failed, only if ``attempt`` still owns the job."""
    job = TrainingJob.objects.filter(id=job_id).first()
    if job is None:
        return False
    progress = dict(job.progress or {})
    progress.update({"phase": phase, "eta_s": 0 if status == JobStatus.SUCCEEDED else None})
    fields: dict[str, Any] = {
        "status": status,
        "finished_at": timezone.now(),
        "error": error,
        "progress": progress,
    }
    if log is not None:
        fields["log"] = log
    if model_version is not None:
        fields["model_version"] = model_version
    query = TrainingJob.objects.filter(id=job_id, status=JobStatus.RUNNING)
    if attempt is not None:
        query = query.filter(progress__attempt=attempt)
    return bool(query.update(**fields))


def _version_fail(version_id: int | None) -> None:
    """training → failed, and its files go: partial ones, and a complete one nothing will ever load."""
    if version_id is None:
        return
    ModelVersion.objects.filter(id=version_id, state=ModelState.TRAINING).update(state=ModelState.FAILED)
    version = ModelVersion.objects.filter(id=version_id).first()
    if version is not None and version.state == ModelState.FAILED:
        model_dir = Path(settings.MODEL_DIR)
        _remove_partial_artifacts(model_dir, version.version)
        shutil.rmtree(model_dir / version.version, ignore_errors=True)


def _version_for_job(job: TrainingJob, data: TrainingData) -> ModelVersion:
    """The job's ModelVersion row (state training), created once and reused by a retried attempt."""
    config = {
        "job_id": job.id,
        "tag_ids": data.tag_ids,
        "valid_ids": data.valid_ids,
        "valid_fraction": VALID_FRACTION,
        "valid_rule": "sha256(mlcore.data.group_key) % 10000 < valid_fraction * 10000",
    }
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(id=job.id)
        if locked.model_version_id is not None:
            version = ModelVersion.objects.get(id=locked.model_version_id)
            version.config = config
            version.state = ModelState.TRAINING
            version.save(update_fields=["config", "state"])
            return version
        version = ModelVersion.objects.create(
            version=f"v{job.id}",
            state=ModelState.TRAINING,
            tagger=settings.TAGSTUDIO_TAGGER,
            base_model=settings.TAGSTUDIO_BASE_MODEL,
            config=config,
            data_fingerprint=data.fingerprint,
        )
        TrainingJob.objects.filter(id=job.id).update(model_version=version)
        return version


def _training_finish(
    job: TrainingJob,
    attempt: int,
    version: ModelVersion,
    final_dir: Path,
    result,
    data: TrainingData,
    comparison: dict[str, Any],
    progress: _Progress,
) -> TrainingJob | None:
    promote, decision = promotion_decision(comparison)
    comparison["decision"] = decision
    metrics = dict(result.metrics)
    metrics["promotion"] = comparison
    progress.log(f"promotion: {decision}")
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().filter(id=job.id).first()
        if locked is None or locked.status != JobStatus.RUNNING or locked.progress.get("attempt") != attempt:
            transaction.set_rollback(True)
            logger.warning("training job %s attempt %s lost its claim before finishing", job.id, attempt)
            return None
        config = dict(version.config)
        config["thresholds"] = _artifact_thresholds(final_dir)
        ModelVersion.objects.filter(id=version.id).update(
            state=ModelState.READY,
            config=config,
            artifact_path=str(final_dir),
            metrics=metrics,
            device=result.device,
            train_size=result.n_train,
            valid_size=result.n_valid,
            data_fingerprint=data.fingerprint,
            duration_s=result.duration_s,
        )
        version.refresh_from_db()
        snapshot = progress.snapshot()
        snapshot.update({"phase": "done", "eta_s": 0})
        TrainingJob.objects.filter(id=job.id).update(
            status=JobStatus.SUCCEEDED,
            finished_at=timezone.now(),
            progress=snapshot,
            log=progress.log_text(),
            model_version=version,
        )
        if promote:
            _activate(version)
    return TrainingJob.objects.get(id=job.id)
