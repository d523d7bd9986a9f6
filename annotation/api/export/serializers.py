"""Input and output shapes of the export API: the approved-tags export and export jobs."""

from __future__ import annotations

from rest_framework import serializers

from annotation.api.filters import PresentChoiceField, PresentDateTimeField
from annotation.io.writers import EXPORT_FORMATS
from annotation.models import (
    ExportJob,
)


class ExportQuerySerializer(serializers.Serializer):
    format = PresentChoiceField(choices=EXPORT_FORMATS, default="jsonl")
    # Optional but never null: leave it out for a full export (an empty form value is not a time).
    updated_since = PresentDateTimeField(
        required=False,
        default=None,
        help_text="ISO-8601; only products whose approved tags changed at or after it (incremental sync). "
        "Pass the previous export's high-water mark.",
    )


class ExportJobCreateSerializer(ExportQuerySerializer):
    pass


class ExportTagSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Canonical name (merged and renamed tags export under it).")
    path = serializers.ListField(child=serializers.CharField(), help_text="Hierarchy path, root first.")
    source = serializers.CharField(
        help_text="Who or what approved it: review, import, bulk, hierarchy, merge."
    )
    approved_by = serializers.CharField(allow_null=True, help_text="Username of the approver, if a person.")
    model_version = serializers.CharField(allow_null=True, help_text="Model whose suggestion was accepted.")
    approved_at = serializers.CharField(help_text="ISO-8601 UTC.")


class ExportProductSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["product"])
    external_id = serializers.CharField()
    updated_at = serializers.CharField(help_text="ISO-8601 UTC: last change of the product's content.")
    tags_updated_at = serializers.CharField(
        allow_null=True, help_text="ISO-8601 UTC: last change of its tags."
    )
    tags = ExportTagSerializer(many=True, help_text="The complete set of active approved tags.")


class ExportDeletedTagSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["deleted_tag"])
    name = serializers.CharField()
    path = serializers.ListField(child=serializers.CharField())
    reason = serializers.ChoiceField(choices=["deactivated", "merged"])
    replaced_by = serializers.CharField(allow_null=True, help_text="The tag it was merged into.")
    changed_at = serializers.CharField()


class ExportEnvelopeSerializer(serializers.Serializer):
    """The ``format=json`` export body (``jsonl`` carries the same records, one per line)."""

    format = serializers.CharField()
    high_water_mark = serializers.CharField(help_text="Pass as `updated_since` next time.")
    updated_since = serializers.CharField(allow_null=True)
    deleted_tags = ExportDeletedTagSerializer(many=True, help_text="Remove these tags from every product.")
    products = ExportProductSerializer(many=True)
    product_count = serializers.IntegerField()


class ExportJobSerializer(serializers.ModelSerializer):
    format = serializers.CharField(source="file_format", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "status",
            "format",
            "updated_since",
            "rows",
            "high_water_mark",
            "error",
            "progress",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
