"""Input and output shapes of the catalog API: products and imports."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import (
    ImportJob,
    Product,
    ProductTag,
    ReviewEvent,
    Suggestion,
)
from annotation.selectors.search import SCORE_FIELD

# --- products ------------------------------------------------------------------------------------------


class ProductListSerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField(help_text="Canonical names of the active approved tags.")
    suggested_by = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)
    score = serializers.SerializerMethodField(
        help_text="With suggested_tag: the model's score for that tag; else null."
    )
    category_path = serializers.ListField(child=serializers.CharField(), read_only=True)
    priority = serializers.FloatField(read_only=True, help_text="Review priority (higher: reviewed first).")

    class Meta:
        model = Product
        fields = [
            "external_id",
            "title",
            "brand",
            "lang",
            "category_path",
            "review_status",
            "priority",
            "tags",
            "suggested_by",
            "score",
            "created_at",
            "updated_at",
            "tags_updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, product: Product) -> list[str]:
        return [approved.tag.name for approved in product.approved_tags.all() if approved.tag.is_active]

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_score(self, product: Product) -> float | None:
        return getattr(product, SCORE_FIELD, None)


class ProductApprovedTagSerializer(serializers.ModelSerializer):
    tag_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(source="tag.name", read_only=True)
    is_active = serializers.BooleanField(source="tag.is_active", read_only=True)
    path = serializers.SerializerMethodField()
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    model_version = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)

    class Meta:
        model = ProductTag
        fields = [
            "tag_id",
            "name",
            "path",
            "is_active",
            "source",
            "approved_by",
            "model_version",
            "approved_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_path(self, approved: ProductTag) -> list[str]:
        return self.context.get("paths", {}).get(approved.tag_id, [approved.tag.name])


class ProductSuggestionSerializer(serializers.ModelSerializer):
    tag_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(source="tag.name", read_only=True)

    class Meta:
        model = Suggestion
        fields = ["tag_id", "name", "score", "selected"]
        read_only_fields = fields


class ProductReviewEventSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    model_version = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)

    class Meta:
        model = ReviewEvent
        fields = [
            "id",
            "action",
            "user",
            "created_at",
            "model_version",
            "shown",
            "previous_tags",
            "final_tags",
            "accepted",
            "rejected",
            "added",
            "removed",
            "reverts",
        ]
        read_only_fields = fields


class ProductDetailSerializer(serializers.ModelSerializer):
    image_url = serializers.CharField(read_only=True, help_text="An http(s) URL, or empty.")
    approved_tags = serializers.SerializerMethodField()
    suggested_by = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)
    suggestions = serializers.SerializerMethodField(
        help_text="Current suggestions: those of the model version in `suggested_by`, best first."
    )
    review_history = serializers.SerializerMethodField(help_text="Review events, newest first (at most 100).")

    class Meta:
        model = Product
        fields = [
            "external_id",
            "title",
            "description",
            "brand",
            "category_path",
            "attributes",
            "lang",
            "image_url",
            "review_status",
            "approved_tags",
            "suggested_by",
            "suggestions",
            "review_history",
            "created_at",
            "updated_at",
            "tags_updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProductApprovedTagSerializer(many=True))
    def get_approved_tags(self, product: Product) -> list[dict]:
        return ProductApprovedTagSerializer(self.context["approved"], many=True, context=self.context).data

    @extend_schema_field(ProductSuggestionSerializer(many=True))
    def get_suggestions(self, product: Product) -> list[dict]:
        return ProductSuggestionSerializer(self.context["suggestions"], many=True).data

    @extend_schema_field(ProductReviewEventSerializer(many=True))
    def get_review_history(self, product: Product) -> list[dict]:
        return ProductReviewEventSerializer(self.context["events"], many=True).data


# --- imports ---------------------------------------------------------------------------------------------


class ImportRowErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    field = serializers.CharField()
    reason = serializers.CharField()
    warning = serializers.BooleanField(
        default=False,
        help_text="true: the row was imported and this is a warning (e.g. its id repeats an earlier line's: "
        "the later row wins); false: the row was rejected.",
    )


class ImportJobSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    errors = ImportRowErrorSerializer(
        many=True, read_only=True, help_text="Rejected rows and warnings (the first ones)."
    )

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "status",
            "source_name",
            "file_format",
            "ignore_tags",
            "rows_total",
            "rows_ok",
            "rows_rejected",
            "products_created",
            "products_updated",
            "errors",
            "error",
            "progress",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A JSONL or CSV catalog file.")
    ignore_tags = serializers.BooleanField(
        required=False, default=False, help_text="Import products only; leave the file's tags out."
    )
