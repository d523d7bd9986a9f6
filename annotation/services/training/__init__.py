"""The learning loop's training half: request a training job, train a model version, promote or roll back.

- ``lifecycle``: the job state machine (request, claim, heartbeat thread, ``/proc`` checks, stale reaping,
  finishing a job);
- ``data``: the approved tags to train on and the fixed validation slice;
- ``artifacts``: the model directory on disk (atomic publish, metadata, cleanup);
- ``promotion``: the comparison with the active version, activation and rollback.

The public use-cases are re-exported here, so callers import them from ``annotation.services.training``.
"""

from annotation.services.training.artifacts import ARTIFACT_META_FILE
from annotation.services.training.data import VALID_FRACTION, TrainingData, TrainingDataError, validation_ids
from annotation.services.training.lifecycle import (
    TrainingAborted,
    heartbeat_seconds,
    model_version_train,
    reviews_submitted_hook,
    stale_after_seconds,
    training_job_request,
    training_jobs_fail_stale,
)
from annotation.services.training.promotion import (
    ModelVersionNotReady,
    model_micro_f1,
    model_version_activate,
)

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
    "reviews_submitted_hook",
    "stale_after_seconds",
    "training_job_request",
    "training_jobs_fail_stale",
    "validation_ids",
]
