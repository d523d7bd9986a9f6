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

Artifacts: mlcore writes to ``MODEL_DIR/<version>.tmp-<attempt>-<random>``; only a complete directory is
renamed to ``MODEL_DIR/<version>/`` (same filesystem, atomic), and only then does the database point at
it. A crash at any point leaves either no row pointing at the artifact or a complete artifact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import (
    OPEN_JOB_STATUSES,
    JobStatus,
    ModelState,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    SuggestionRefresh,
    Tag,
    TrainingJob,
    TrainingTrigger,
)
from mlcore.settings import RuntimeSettings

logger = logging.getLogger(__name__)

# The validation slice: about this share of the approved products (whole title groups, chosen by a hash
# of the title, the same rule in every run; see validation_ids).
VALID_FRACTION = 0.15
# The job's log column keeps the last this-many characters (a GPU run logs a line per progress step).
LOG_MAX_CHARS = 200_000
ARTIFACT_META_FILE = "tagstudio.json"


def _seconds_setting(name: str, default: float) -> float:
    # A Django setting when the project defines it, else the environment variable of the same name.
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from exc


def heartbeat_seconds() -> float:
    """How often a running training writes its progress and heartbeat."""
    return _seconds_setting("TRAINING_HEARTBEAT_SECONDS", 5.0)


def stale_after_seconds() -> float:
    """A running job whose heartbeat is older than this is considered lost."""
    return _seconds_setting("TRAINING_STALE_AFTER_SECONDS", 120.0)


class TrainingDataError(ValueError):
    """The approved tags cannot train a tagger (none at all, a single tag); the message says what to do."""


class TrainingAborted(RuntimeError):
    """This attempt lost the job (another worker took it over, or it was failed as stale)."""


class ModelVersionNotReady(ValueError):
    """Only a READY model version can be activated."""


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
            reviews = ReviewEvent.objects.filter(action=ReviewAction.SUBMIT).count()
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
                    _enqueue_training(job.id)
                logger.info("training job %s requested (%s)", job.id, trigger)
                return job
        if enqueue and open_job.status == JobStatus.QUEUED:
            _enqueue_training(open_job.id)
        return open_job


def _enqueue_training(job_id: int) -> None:
    from annotation.tasks import model_train

    transaction.on_commit(lambda: model_train.delay(job_id))


def reviews_submitted_hook() -> TrainingJob | None:
    """Call after a review submit commits: requests a training once ``RETRAIN_AFTER_REVIEWS`` new submits
    have accumulated since the last training started (0 disables). Returns the job when it asked for one."""
    threshold = int(settings.RETRAIN_AFTER_REVIEWS)
    if threshold <= 0:
        return None
    last = TrainingJob.objects.order_by("-created_at", "-id").first()
    if last is not None and last.status in OPEN_JOB_STATUSES:
        return None  # debounced: the open job will see these reviews (it reads the data when it starts)
    submits = ReviewEvent.objects.filter(action=ReviewAction.SUBMIT)
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
        beat = _heartbeat_of(job)
        if beat is not None and beat >= cutoff:
            continue
        if beat is None and job.started_at and job.started_at >= cutoff:
            continue
        attempt = job.progress.get("attempt")
        message = (
            f"worker lost: no heartbeat from {job.progress.get('worker', '?')} since {beat or job.started_at}"
        )
        if _job_finish(job.id, attempt, JobStatus.FAILED, error=message, phase="failed"):
            failed += 1
            _version_fail(job.model_version_id)
            logger.warning("training job %s: %s", job.id, message)
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


class _Heartbeat(threading.Thread):
    """Writes progress, log and heartbeat every few seconds; notices when this attempt lost the job."""

    def __init__(self, progress: _Progress, listener: Callable[[dict[str, Any]], None] | None) -> None:
        super().__init__(name=f"training-heartbeat-{progress.job_id}", daemon=True)
        self.progress = progress
        self.listener = listener
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(heartbeat_seconds()):
                self.beat()
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        snapshot = self.progress.snapshot()
        try:
            updated = TrainingJob.objects.filter(
                id=self.progress.job_id, status=JobStatus.RUNNING, progress__attempt=self.progress.attempt
            ).update(progress=snapshot, log=self.progress.log_text())
        except Exception:  # a database hiccup must not kill the training; the next beat retries
            logger.exception("training job %s: heartbeat failed", self.progress.job_id)
            return
        if not updated:
            self.progress.lost = True
        if self.listener is not None:
            self.listener(snapshot)


def model_version_train(
    job_id: int, *, on_progress: Callable[[dict[str, Any]], None] | None = None
) -> TrainingJob | None:
    """Run training job ``job_id``: train, register the version, promote it per ``MODEL_PROMOTION``.

    Returns the finished job, or None when there was nothing to do (unknown id, job already finished, or
    running under a live worker: a duplicate delivery). ``on_progress`` receives each progress snapshot
    (the ``train`` command draws its progress bar from it).
    """
    claim = _training_job_claim(job_id)
    if claim is None:
        return None
    job, attempt = claim
    progress = _Progress(job_id=job.id, attempt=attempt, worker=_worker_name())
    progress.lines = job.log.splitlines() if job.log else []  # earlier attempts' lines stay
    heartbeat = _Heartbeat(progress, on_progress)
    heartbeat.start()
    version: ModelVersion | None = None
    tmp_dir: Path | None = None
    try:
        progress.log(f"attempt {attempt} on {progress.worker}")
        progress.update("loading data", 0, None)
        data = _training_data()
        progress.log(
            f"{len(data.records)} approved products, {len(data.tag_ids)} tags, "
            f"{len(data.valid_ids)} held out for validation"
        )
        version = _version_for_job(job, data)
        model_dir = Path(settings.MODEL_DIR)
        model_dir.mkdir(parents=True, exist_ok=True)
        _remove_partial_artifacts(model_dir, version.version)
        tmp_dir = model_dir / f"{version.version}.tmp-{attempt}-{uuid.uuid4().hex[:8]}"
        result = _mlcore_train(data, tmp_dir, progress)
        progress.device = result.device
        progress.log(f"trained on {result.device} in {result.duration_s:.1f}s")
        _write_artifact_meta(Path(result.path), job=job, version=version, data=data)
        if progress.lost:
            raise TrainingAborted(f"training job {job.id} attempt {attempt} lost its claim")
        final_dir = model_dir / version.version
        _publish_artifact(Path(result.path), final_dir)
        tmp_dir = None
        progress.update("evaluating", 0, None)
        comparison = _promotion_comparison(final_dir, result, data)
        progress.log(
            "validation micro-F1 {new:.4f} (active {active})".format(
                new=comparison["candidate_micro_f1"],
                active="none"
                if comparison["active_micro_f1"] is None
                else f"{comparison['active_micro_f1']:.4f}",
            )
        )
        heartbeat.stopping.set()
        heartbeat.join()
        return _training_finish(job, attempt, version, final_dir, result, data, comparison, progress)
    except TrainingAborted as exc:
        logger.warning("%s", exc)
        return None
    except Exception as exc:
        error = _error_text(exc)
        progress.log(f"failed: {error}")
        if not isinstance(exc, TrainingDataError):
            progress.log(traceback.format_exc())
        heartbeat.stopping.set()
        heartbeat.join()
        finished = _job_finish(
            job.id, attempt, JobStatus.FAILED, error=error, phase="failed", log=progress.log_text()
        )
        if finished and version is not None:
            _version_fail(version.id)
        if not isinstance(exc, TrainingDataError):
            logger.exception("training job %s failed", job.id)
        return TrainingJob.objects.get(id=job.id)
    finally:
        heartbeat.stopping.set()
        if heartbeat.is_alive():
            heartbeat.join()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, TrainingDataError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _heartbeat_of(job: TrainingJob) -> datetime | None:
    value = (job.progress or {}).get("heartbeat_at")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that its parent has not reaped yet is a zombie: dead for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def _owner_gone(job: TrainingJob) -> bool:
    """Whether the worker that holds a running job is certainly gone (dead pid here, or a stale heartbeat)."""
    worker = (job.progress or {}).get("worker", "")
    host, _, pid_text = worker.rpartition(":")
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        # This very process cannot be running it (a prefork child runs one task at a time).
        if pid == os.getpid() or not _process_alive(pid):
            return True
    beat = _heartbeat_of(job) or job.started_at
    return beat is None or beat < timezone.now() - timedelta(seconds=stale_after_seconds())


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


# --------------------------------------------------------------------------------------------------
# Training data: every approved tag (reviewed, imported, ...) under its canonical, active tag
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainingData:
    records: list  # list[mlcore.types.ProductRecord], tags are canonical tag names
    tag_ids: dict[str, int]  # canonical tag name -> Tag id (the label map stored with the version)
    valid_ids: list[str]
    fingerprint: str


def _training_data() -> TrainingData:
    from mlcore.types import ProductRecord

    tags = {
        tag_id: (name, merged_into, active)
        for tag_id, name, merged_into, active in Tag.objects.values_list(
            "id", "name", "merged_into_id", "is_active"
        )
    }

    def canonical(tag_id: int) -> int | None:
        seen = set()
        while tag_id in tags and tags[tag_id][1] is not None and tag_id not in seen:
            seen.add(tag_id)
            tag_id = tags[tag_id][1]
        return tag_id if tag_id in tags and tags[tag_id][2] else None

    product_tags: dict[int, set[int]] = {}
    for product_id, tag_id in ProductTag.objects.values_list("product_id", "tag_id").iterator(
        chunk_size=20_000
    ):
        resolved = canonical(tag_id)
        if resolved is not None:
            product_tags.setdefault(product_id, set()).add(resolved)
    if not product_tags:
        raise TrainingDataError(
            "No approved tags to train on: review some products or import a catalog with tags first."
        )
    used = sorted({t for ts in product_tags.values() for t in ts})
    if len(used) < 2:
        raise TrainingDataError(
            f"All approved tags are the same tag ({tags[used[0]][0]!r}): a tagger needs at least two "
            "different tags to learn to tell them apart. Review more products first."
        )
    tag_ids = {tags[t][0]: t for t in used}
    name_of = {t: tags[t][0] for t in used}
    digest = hashlib.sha256()
    records = []
    fields = ("id", "title", "description", "brand", "category_path", "attributes", "lang", "content_hash")
    ids = sorted(product_tags)
    for start in range(0, len(ids), 20_000):
        chunk = ids[start : start + 20_000]
        for row in Product.objects.filter(id__in=chunk).order_by("id").values_list(*fields):
            pk, title, description, brand, category_path, attributes, lang, content_hash = row
            names = tuple(sorted(name_of[t] for t in product_tags[pk]))
            records.append(
                ProductRecord(
                    id=str(pk),
                    title=title,
                    description=description or "",
                    brand=brand or None,
                    category_path=tuple(category_path) if category_path else None,
                    attributes=attributes or None,
                    lang=lang or None,
                    tags=names,
                )
            )
            digest.update(f"{pk}\t{content_hash}\t{'|'.join(names)}\n".encode())
    if len(records) < 2:
        raise TrainingDataError(
            f"Only {len(records)} product has approved tags: a training needs products to learn from and "
            "products to validate on. Review more products first."
        )
    return TrainingData(
        records=records, tag_ids=tag_ids, valid_ids=validation_ids(records), fingerprint=digest.hexdigest()
    )


def validation_ids(records: Sequence) -> list[str]:
    """The held-out slice: products whose title group hashes into the first ``VALID_FRACTION`` of the
    hash space (mlcore's grouping: variants sharing a normalised title stay on one side).

    The rule is the same for every run, so a product held out once is held out in every later run: the
    active version never trained on the slice it is compared on, and the comparison is fair. A tiny
    data set still gets at least one product on each side.
    """
    from mlcore.data import group_key

    def bucket(record) -> int:
        return int.from_bytes(hashlib.sha256(group_key(record).encode()).digest()[:8], "big") % 10_000

    buckets = [bucket(r) for r in records]
    cutoff = int(VALID_FRACTION * 10_000)
    valid = [r.id for r, b in zip(records, buckets) if b < cutoff]
    if not valid or len(valid) == len(records):
        # Too few groups for the fraction to land: hold out the lowest-hashing group (keep one to train).
        lowest = min(buckets)
        valid = [r.id for r, b in zip(records, buckets) if b == lowest]
        if len(valid) == len(records):
            raise TrainingDataError(
                "Every product with approved tags has the same title: a training needs products with "
                "different titles to learn from and to validate on."
            )
    return valid


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


def _mlcore_train(data: TrainingData, out_dir: Path, progress: _Progress):
    from mlcore.training import TrainConfig, train

    config = TrainConfig(tagger=settings.TAGSTUDIO_TAGGER)
    return train(
        data.records,
        out_dir,
        config,
        valid_ids=data.valid_ids,
        progress=progress.update,
        runtime=mlcore_runtime_settings(),
    )


def mlcore_runtime_settings() -> RuntimeSettings:
    """The Django settings mlcore runs with (it never imports Django): embedding cache, base model,
    device and CPU threads; checkpoints load from local files only."""
    return RuntimeSettings(
        cache_dir=settings.EMBEDDING_CACHE_DIR,
        base_model=settings.TAGSTUDIO_BASE_MODEL or None,
        device=settings.TAGSTUDIO_DEVICE or None,
        num_threads=settings.TAGSTUDIO_NUM_THREADS or None,
        local_files_only=True,
    )


def _write_artifact_meta(
    artifact: Path, *, job: TrainingJob, version: ModelVersion, data: TrainingData
) -> None:
    meta = {
        "version": version.version,
        "job_id": job.id,
        "tag_ids": data.tag_ids,
        "valid_ids": data.valid_ids,
        "train_size": len(data.records) - len(data.valid_ids),
        "data_fingerprint": data.fingerprint,
    }
    with open(artifact / ARTIFACT_META_FILE, "w", encoding="utf-8") as fh:
        json.dump(meta, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _remove_partial_artifacts(model_dir: Path, version_name: str) -> None:
    # Ours (<version>.tmp-<attempt>-<random>) and mlcore's own temporary siblings of it (.<name>.tmp-...).
    for pattern in (f"{version_name}.tmp-*", f".{version_name}.tmp-*"):
        for partial in model_dir.glob(pattern):
            shutil.rmtree(partial, ignore_errors=True)


def _publish_artifact(tmp_dir: Path, final_dir: Path) -> None:
    """Rename the complete artifact into place. A directory already there came from an attempt that died
    after its rename but before the database pointed at it: nothing uses it, so it is replaced."""
    if final_dir.exists():
        trash = final_dir.with_name(f"{final_dir.name}.tmp-replaced-{uuid.uuid4().hex[:8]}")
        final_dir.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp_dir, final_dir)
    _fsync_dir(final_dir.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _valid_records(data: TrainingData) -> list:
    wanted = set(data.valid_ids)
    return [r for r in data.records if r.id in wanted]


def model_micro_f1(artifact: Path | str, records: Sequence) -> float:
    """Micro-F1 of the model in ``artifact`` on ``records`` (their gold ``tags``), over selected tags."""
    from mlcore.inference import load_model, predict
    from mlcore.metrics import evaluate_tag_sets

    model = load_model(str(artifact), runtime=mlcore_runtime_settings())
    scored = predict(model, list(records), top_k=20)
    selected = [[s.tag for s in row if s.selected] for row in scored]
    return float(evaluate_tag_sets([r.tags for r in records], selected, per_tag=False)["micro_f1"])


def _promotion_comparison(candidate_dir: Path, result, data: TrainingData) -> dict[str, Any]:
    """Candidate and active micro-F1 on the candidate's validation slice, computed the same way.

    mlcore measured the candidate on exactly this slice (``valid_ids``; selected tags of ``suggest``
    against the gold tags, ``mlcore.metrics``); the active version is scored here the same way.
    """
    valid = _valid_records(data)
    candidate_f1 = result.metrics.get("micro_f1")
    if candidate_f1 is None or result.n_valid != len(valid):
        candidate_f1 = model_micro_f1(candidate_dir, valid)
    active = ModelVersion.objects.filter(is_active=True).first()
    comparison: dict[str, Any] = {
        "slice_size": len(valid),
        "candidate_micro_f1": float(candidate_f1),
        "active_version": active.version if active else None,
        "active_micro_f1": None,
    }
    if active is not None:
        from annotation.services.suggestions import artifact_dir

        try:
            comparison["active_micro_f1"] = model_micro_f1(artifact_dir(active), valid)
        except Exception as exc:  # a missing or unloadable active artifact: the admin decides
            logger.exception("could not score the active version %s", active.version)
            comparison["active_error"] = f"{type(exc).__name__}: {exc}"
    return comparison


def _artifact_thresholds(artifact: Path) -> dict[str, float]:
    """The tagger's per-tag decision thresholds (the review queue ranks uncertainty relative to them)."""
    try:
        with open(artifact / "tagger.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        return {str(t): float(v) for t, v in zip(meta["classes"], meta["thresholds"])}
    except (OSError, KeyError, ValueError, TypeError):
        return {}


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
    promote_auto = settings.MODEL_PROMOTION == "auto"
    active_f1 = comparison["active_micro_f1"]
    active_error = comparison.get("active_error")
    promote = (
        promote_auto
        and not active_error
        and (active_f1 is None or comparison["candidate_micro_f1"] >= active_f1)
    )
    if not promote_auto:
        decision = "manual: waiting for an admin to activate it"
    elif active_error:
        decision = (
            f"kept {comparison['active_version']}: could not score it ({active_error}); activate by hand"
        )
    elif promote:
        decision = "promoted" if active_f1 is not None else "promoted (no active version)"
    else:
        decision = f"kept {comparison['active_version']}: lower micro-F1 on the same validation slice"
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


# --------------------------------------------------------------------------------------------------
# Activation (promotion and rollback)
# --------------------------------------------------------------------------------------------------


def model_version_activate(*, version: ModelVersion, user=None) -> ModelVersion:
    """Make ``version`` (READY) the active tagger: its suggestions are computed for every unreviewed product
    in batches, and the UI shows only the active version's suggestions. Rollback is activating an older one."""
    with transaction.atomic():
        version = _activate(version)
    logger.info("model version %s activated by %s", version.version, getattr(user, "username", None))
    return version


def _activate(version: ModelVersion) -> ModelVersion:
    # Lock the versions involved (pk order) so two activations serialize; one_active_model backs this up.
    ids = sorted({version.id, *ModelVersion.objects.filter(is_active=True).values_list("id", flat=True)})
    locked = {v.id: v for v in ModelVersion.objects.select_for_update().filter(id__in=ids).order_by("id")}
    target = locked[version.id]
    if target.state != ModelState.READY:
        raise ModelVersionNotReady(
            f"model version {target.version} is {target.state}; only a ready version can be activated"
        )
    from annotation.services.suggestions import artifact_dir

    if not artifact_dir(target).is_dir():  # MODEL_DIR/<version>/, where every worker loads it from
        raise ModelVersionNotReady(
            f"model version {target.version} has no artifact at {artifact_dir(target)}"
        )
    if target.is_active:
        return target
    ModelVersion.objects.filter(is_active=True).update(is_active=False)
    target.is_active = True
    target.activated_at = timezone.now()
    target.save(update_fields=["is_active", "activated_at"])
    Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).update(needs_suggestion=True)
    # Refreshes for other versions stop at their next batch (they check the active version).
    SuggestionRefresh.objects.filter(~Q(model_version=target), status__in=OPEN_JOB_STATUSES).update(
        status=JobStatus.FAILED, finished_at=timezone.now()
    )
    from annotation.services.suggestions import suggestions_refresh_start

    suggestions_refresh_start(version=target)
    return target
