"""Input and output shapes of tag-centric bulk review: a tag's candidates, bulk decisions, bulk actions."""

from __future__ import annotations

from rest_framework import serializers

from annotation.api.filters import PresentChoiceField
from annotation.models import BulkAction
from annotation.selectors.bulk import (
    CANDIDATE_ORDERS,
    CANDIDATE_STATUSES,
    CandidateFilter,
    CandidateFilterError,
    category_parse,
)

# The largest explicit list one request may carry (bigger selections go by filter).
MAX_LISTED = 100_000


class CandidateFilterSerializer(serializers.Serializer):
    """The filters of a tag's candidate grid (query parameters, or the body's ``accept_filter``)."""

    min_score = serializers.FloatField(
        required=False, default=None, min_value=0.0, max_value=1.0, help_text="Lowest score (inclusive)."
    )
    max_score = serializers.FloatField(
        required=False, default=None, min_value=0.0, max_value=1.0, help_text="Highest score (inclusive)."
    )
    status = PresentChoiceField(
        choices=CANDIDATE_STATUSES,
        default="all",
        help_text="Reviewed for this tag: the whole product was reviewed, or the tag was decided in bulk.",
    )
    q = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=200,
        help_text="Text in the title or brand, or the exact SKU.",
    )
    category = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=1000,
        help_text='Category path prefix, levels separated by ">" ("Clothing > Shoes").',
    )
    disagreement = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only products where the model's selection and the approved tags disagree on this tag.",
    )

    def candidate_filter(self) -> CandidateFilter:
        return candidate_filter_from(self.validated_data)


def candidate_filter_from(data: dict) -> CandidateFilter:
    """A validated CandidateFilterSerializer's data as the selector's filter (400 naming the field)."""
    try:
        return CandidateFilter(
            min_score=data["min_score"],
            max_score=data["max_score"],
            status=data["status"],
            text=data["q"],
            category=category_parse(data["category"]),
            disagreement=data["disagreement"],
        )
    except CandidateFilterError as exc:
        raise serializers.ValidationError({exc.field: [str(exc)]}) from exc


class CandidateQuerySerializer(CandidateFilterSerializer):
    order = PresentChoiceField(
        choices=CANDIDATE_ORDERS,
        default="-score",
        help_text="-score: highest first (to clear a tag); score: lowest first (to hunt errors).",
    )
    cursor = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="The `next` cursor of the page before."
    )


class CandidateRowSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    title = serializers.CharField()
    brand = serializers.CharField()
    image_url = serializers.CharField(help_text="Thumbnail (the catalog's image URL); may be empty.")
    score = serializers.FloatField(help_text="The active model's score for this tag.")
    selected = serializers.BooleanField(help_text="The model applies this tag (after its thresholds).")
    approved = serializers.BooleanField(help_text="The tag is an approved tag of the product.")
    decided = serializers.BooleanField(help_text="Reviewed for this tag (card review or bulk decision).")
    review_status = serializers.CharField()
    approved_tags = serializers.ListField(child=serializers.CharField())
    claimed_by = serializers.CharField(allow_null=True, help_text="Who holds a live review claim on it.")


class CandidatePageSerializer(serializers.Serializer):
    tag = serializers.DictField(help_text='{"id": int, "name": str}')
    model_version = serializers.CharField(allow_null=True, help_text="The active version; null: none yet.")
    next = serializers.CharField(allow_null=True, help_text="URL of the next page (null on the last).")
    results = CandidateRowSerializer(many=True)


class BulkReviewSerializer(serializers.Serializer):
    """Exactly one of: ``accept``/``reject`` lists of external ids, ``accept_filter``, ``reject_filter``."""

    accept = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, max_length=MAX_LISTED
    )
    reject = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, max_length=MAX_LISTED
    )
    accept_filter = CandidateFilterSerializer(
        required=False, help_text="Accept the tag for every candidate this filter selects."
    )
    reject_filter = CandidateFilterSerializer(
        required=False, help_text="Reject the tag for every candidate this filter selects."
    )

    def validate(self, attrs: dict) -> dict:
        listed = "accept" in attrs or "reject" in attrs
        filtered = [key for key in ("accept_filter", "reject_filter") if key in attrs]
        if listed + len(filtered) != 1:
            raise serializers.ValidationError(
                "Send either accept/reject lists of external ids, or one of accept_filter, reject_filter."
            )
        if listed and not (attrs.get("accept") or attrs.get("reject")):
            raise serializers.ValidationError({"accept": ["Name at least one product to accept or reject."]})
        return attrs

    def candidate_filter(self) -> tuple[CandidateFilter, bool] | None:
        """(filter, accept) for a filter request, None for lists."""
        for key, accept in (("accept_filter", True), ("reject_filter", False)):
            if key in self.validated_data:
                try:
                    return candidate_filter_from(self.validated_data[key]), accept
                except serializers.ValidationError as exc:
                    raise serializers.ValidationError({key: exc.detail}) from exc
        return None


class BulkActionSerializer(serializers.ModelSerializer):
    tag_name = serializers.CharField(source="tag.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    model_version = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)
    undone = serializers.SerializerMethodField()

    class Meta:
        model = BulkAction
        fields = [
            "id",
            "kind",
            "status",
            "tag",
            "tag_name",
            "model_version",
            "undoes",
            "undone",
            "total",
            "done",
            "skipped",
            "skipped_items",
            "error",
            "progress",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_undone(self, action: BulkAction) -> bool:
        undone = getattr(action, "undone", None)
        return bool(undone) if undone is not None else BulkAction.objects.filter(undoes=action).exists()


class BulkProductResultSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["done", "skipped"])
    reason = serializers.CharField(required=False, help_text="Why a product was skipped.")


class BulkOutcomeSerializer(serializers.Serializer):
    action = BulkActionSerializer()
    job = serializers.IntegerField(
        allow_null=True, help_text="The background job's id (the action's) when it runs in the background."
    )
    results = BulkProductResultSerializer(
        many=True, help_text="Per product, for an action that ran in the request (empty for a job)."
    )
