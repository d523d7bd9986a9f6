"""Running a training job on a worker: claim it, train with mlcore, publish the artifact, compare it with
the active version and finish the job (``lifecycle``) with the promotion rule (``promotion``).

This is the one module of the app that imports ``mlcore.training`` and ``mlcore.metrics``, which load
scikit-learn (about 100 MB and a second per process): the web process never imports it (only workers
and the ``train`` command do), so a web worker starts without it.
"""

from __future__ import annotations

import logging
import shutil
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.models import JobStatus, ModelVersion, TrainingJob
from annotation.services.model_files import artifact_dir, mlcore_runtime_settings
from annotation.services.training.artifacts import (
    _publish_artifact,
    _remove_partial_artifacts,
    _write_artifact_meta,
)
from annotation.services.training.data import TrainingData, TrainingDataError, _training_data, _valid_records
from annotation.services.training.lifecycle import (
    TrainingAborted,
    _Heartbeat,
    _job_finish,
    _Progress,
    _training_finish,
    _training_job_claim,
    _version_fail,
    _version_for_job,
    _worker_name,
)
from mlcore.inference import load_model, predict
from mlcore.metrics import evaluate_tag_sets
from mlcore.training import TrainConfig, train

logger = logging.getLogger(__name__)


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


def _mlcore_train(data: TrainingData, out_dir: Path, progress: _Progress):
    config = TrainConfig(tagger=settings.TAGSTUDIO_TAGGER)
    return train(
        data.records,
        out_dir,
        config,
        valid_ids=data.valid_ids,
        progress=progress.update,
        runtime=mlcore_runtime_settings(),
        taxonomy=data.taxonomy,
    )


def model_micro_f1(artifact: Path | str, records: Sequence) -> float:
    """Micro-F1 of the model in ``artifact`` on ``records`` (their gold ``tags``), over selected tags."""
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
        try:
            comparison["active_micro_f1"] = model_micro_f1(artifact_dir(active), valid)
        except Exception as exc:  # a missing or unloadable active artifact: the admin decides
            logger.exception("could not score the active version %s", active.version)
            comparison["active_error"] = f"{type(exc).__name__}: {exc}"
    return comparison
