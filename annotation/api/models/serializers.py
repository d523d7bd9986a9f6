"""Shapes of the model-registry API: model versions, training jobs, the suggestion refresh, the strategy."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.models import ModelVersion, SuggestionRefresh, TrainingJob

# The headline figures shown in lists; the per-tag table is only in a version's detail.
SUMMARY_METRICS = ("micro_f1", "micro_precision", "micro_recall", "macro_f1", "p@1", "p@5", "promotion")


class ModelVersionSerializer(serializers.ModelSerializer):
    metrics = serializers.SerializerMethodField()
    training_job = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "version",
            "state",
            "is_active",
            "tagger",
            "base_model",
            "device",
            "metrics",
            "train_size",
            "valid_size",
            "data_fingerprint",
            "duration_s",
            "created_at",
            "activated_at",
            "training_job",
        ]
        read_only_fields = fields

    def get_metrics(self, version: ModelVersion) -> dict[str, Any]:
        metrics = version.metrics or {}
        return {key: metrics[key] for key in SUMMARY_METRICS if key in metrics}

    def get_training_job(self, version: ModelVersion) -> int | None:
        job = getattr(version, "training_job", None)
        return job.id if job is not None else None


class ModelVersionDetailSerializer(ModelVersionSerializer):
    """With every metric (per-tag F1 included) and the recorded configuration (validation ids, label map)."""

    config = serializers.JSONField(read_only=True)

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "config"]
        read_only_fields = fields

    def get_metrics(self, version: ModelVersion) -> dict[str, Any]:
        return version.metrics or {}


class TrainingJobSerializer(serializers.ModelSerializer):
    model_version_name = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "status",
            "trigger",
            "progress",
            "model_version",
            "model_version_name",
            "error",
            "log",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_model_version_name(self, job: TrainingJob) -> str | None:
        return job.model_version.version if job.model_version_id else None


class TrainingJobCreatedSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    status = serializers.CharField()
    created = serializers.BooleanField(help_text="false when a queued or running job was returned instead")
    url = serializers.CharField()


class SuggestionRefreshSerializer(serializers.ModelSerializer):
    model_version_name = serializers.CharField(source="model_version.version", read_only=True)

    class Meta:
        model = SuggestionRefresh
        fields = [
            "id",
            "model_version",
            "model_version_name",
            "status",
            "done",
            "total",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class StrategySerializer(serializers.Serializer):
    strategy = serializers.CharField(max_length=100)
