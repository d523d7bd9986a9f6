"""Model registry reads: model versions, training jobs and the active version.

The dashboard's model figures (timeline, learning curve, per-tag quality) are aggregates and live in
annotation.selectors.dashboard; suggestion refresh progress is read by annotation.services.suggestions.
"""

from __future__ import annotations

from django.db.models import QuerySet

from annotation.models import ModelVersion, TrainingJob


def model_version_queryset() -> QuerySet[ModelVersion]:
    """Model versions, newest first, with the training job that made each joined."""
    return ModelVersion.objects.select_related("training_job")


def model_version_active() -> ModelVersion | None:
    """The version whose suggestions operators see (none before the first activation)."""
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_active_id() -> int | None:
    return ModelVersion.objects.filter(is_active=True).values_list("id", flat=True).first()


def training_job_queryset() -> QuerySet[TrainingJob]:
    """Training jobs, newest first, with the version each produced joined."""
    return TrainingJob.objects.select_related("model_version")


def training_job_latest_id() -> int | None:
    """The newest training job's id: a training request that returns another id created a new job."""
    return TrainingJob.objects.order_by("-id").values_list("id", flat=True).first()
