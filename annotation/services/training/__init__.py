"""The learning loop's training half: request a training job, train a model version, promote or roll back.

- ``lifecycle``: the job state machine (request, claim, heartbeat thread, ``/proc`` checks, stale reaping,
  finishing a job);
- ``data``: the approved tags to train on and the fixed validation slice;
- ``artifacts``: the model directory on disk (atomic publish, metadata, cleanup);
- ``promotion``: the promotion rule, activation and rollback;
- ``run``: running a job on a worker (mlcore training, the comparison with the active version).

The public use-cases are re-exported here, so callers import them from ``annotation.services.training``.
"""

from typing import Any

from annotation.services.training.artifacts import ARTIFACT_META_FILE
from annotation.services.training.data import VALID_FRACTION, TrainingData, TrainingDataError, validation_ids
from annotation.services.training.lifecycle import (
    TrainingAborted,
    heartbeat_seconds,
    reviews_submitted_hook,
    stale_after_seconds,
    training_job_request,
    training_jobs_fail_stale,
    training_jobs_reap,
)
from annotation.services.training.promotion import (
    ModelVersionNotReady,
    model_version_activate,
    promotion_decision,
)

_RUN_EXPORTS = ("model_version_train", "model_micro_f1")

__all__ = [
    "ARTIFACT_META_FILE",
    "VALID_FRACTION",
    "ModelVersionNotReady",
    "TrainingAborted",
    "TrainingData",
    "TrainingDataError",
    "heartbeat_seconds",
    "model_micro_f1",
    "model_version_activate",
    "model_version_train",
    "promotion_decision",
    "reviews_submitted_hook",
    "stale_after_seconds",
    "training_job_request",
    "training_jobs_fail_stale",
    "training_jobs_reap",
    "validation_ids",
]


def __getattr__(name: str) -> Any:
    """``model_version_train`` and ``model_micro_f1`` on first use: ``run`` loads scikit-learn (through
    mlcore), which the web process, importing this package for requests and activation, never needs.
    Workers and the ``train`` command import ``annotation.services.training.run`` directly."""
    if name in _RUN_EXPORTS:
        # Function-level on purpose: keeps scikit-learn (+100 MB, +1 s) out of every web process.
        from annotation.services.training import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
