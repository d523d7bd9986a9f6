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


class AutoApprovalSettingsSerializer(serializers.Serializer):
    """``PUT /api/v1/auto-approval/``: the settings to change; omitted ones keep their values."""

    enabled = serializers.BooleanField(required=False)
    target_precision = serializers.FloatField(required=False, min_value=0.5, max_value=0.9999)
    confidence = serializers.FloatField(required=False, min_value=0.5, max_value=0.999)
    audit_share = serializers.FloatField(required=False, min_value=0.0001, max_value=1.0)
    audit_min_products = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
    min_tag_evidence = serializers.IntegerField(required=False, min_value=1, max_value=10_000_000)
    stop_rule = serializers.ChoiceField(choices=["lower_bound", "upper_bound"], required=False)
    review_evidence = serializers.ChoiceField(choices=["audits", "all"], required=False)

    # JSON types as the schema states them: DRF alone would read "0" as false and "0.9" as a number.
    _JSON_TYPES = {
        "enabled": (bool,),
        "target_precision": (int, float),
        "confidence": (int, float),
        "audit_share": (int, float),
        "audit_min_products": (int,),
        "min_tag_evidence": (int,),
        "stop_rule": (str,),
        "review_evidence": (str,),
    }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        data = self.initial_data if isinstance(self.initial_data, dict) else {}
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown setting."] for name in unknown})
        wrong = {
            name: [
                f"Must be a JSON {'boolean' if kinds == (bool,) else 'string' if kinds == (str,) else 'number'}."
            ]
            for name, kinds in self._JSON_TYPES.items()
            if name in data
            and (not isinstance(data[name], kinds) or (kinds != (bool,) and isinstance(data[name], bool)))
        }
        if wrong:
            raise serializers.ValidationError(wrong)
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": [f"Give at least one of: {', '.join(self.fields)}."]}
            )
        return attrs


class AuditFiguresSerializer(serializers.Serializer):
    drawn = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="Model-approved pairs the audit reviewers saw.")
    confirmed = serializers.IntegerField(help_text="Of those, kept by the reviewer.")
    added_tags = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True, help_text="Realised precision: confirmed / pairs.")
    lower_bound = serializers.FloatField(
        allow_null=True, help_text="One-sided Clopper-Pearson lower bound at the confidence level."
    )
    interval = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="Two-sided Clopper-Pearson interval."
    )
    decided = serializers.BooleanField()
    failing = serializers.BooleanField()


class AutoApprovalVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.CharField()
    is_active = serializers.BooleanField()
    approved_pairs = serializers.IntegerField(help_text="Pairs this version ever approved.")
    approved_products = serializers.IntegerField()
    pairs_unconfirmed = serializers.IntegerField(help_text="Still source model: what a revert removes.")
    products_out_of_queue = serializers.IntegerField()
    global_cut = serializers.DictField(allow_null=True)
    tags_with_own_cut = serializers.IntegerField()
    evidence = serializers.DictField()
    computed_at = serializers.DateTimeField(allow_null=True)
    reverted_at = serializers.DateTimeField(allow_null=True)
    no_approval_reason = serializers.CharField(
        allow_null=True, help_text="Why the version approves nothing: its evidence at the closest cut."
    )
    queue_exit_reason = serializers.CharField(
        allow_null=True, help_text="Why products it approved tags on stay in the review queue."
    )
    audit = AuditFiguresSerializer()


class AutoApprovalStateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    target_precision = serializers.FloatField()
    confidence = serializers.FloatField()
    audit_share = serializers.FloatField()
    audit_min_products = serializers.IntegerField()
    min_tag_evidence = serializers.IntegerField()
    stop_rule = serializers.CharField()
    review_evidence = serializers.CharField()
    stopped = serializers.BooleanField()
    stop = serializers.DictField(allow_null=True, help_text="Why approvals stopped: reason, version, audit.")
    pending = serializers.BooleanField(help_text="A pass is requested and has not run yet.")
    products_out_of_queue = serializers.IntegerField()
    audits_waiting = serializers.IntegerField()
    versions = AutoApprovalVersionSerializer(many=True)


class AutoApprovalRevertSerializer(serializers.Serializer):
    version = serializers.CharField()
    pairs_removed = serializers.IntegerField()
    products_returned = serializers.IntegerField()
    audits_cancelled = serializers.IntegerField()
