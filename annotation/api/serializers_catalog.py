"""Input and output shapes of the catalog API: products, tags, imports, exports, users and tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.api.filters import PresentChoiceField, PresentDateTimeField
from annotation.io.writers import EXPORT_FORMATS
from annotation.models import (
    ExportJob,
    ImportJob,
    Product,
    ProductTag,
    ReviewEvent,
    Suggestion,
    Tag,
    TagAlias,
)
from annotation.roles import ADMIN, OPERATOR, ROLES

# --- tags ----------------------------------------------------------------------------------------------


class TagSerializer(serializers.ModelSerializer):
    path = serializers.SerializerMethodField(help_text="Hierarchy path, root first, this tag last.")
    aliases = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Tag
        fields = [
            "id",
            "name",
            "normalized_name",
            "parent",
            "path",
            "description",
            "is_active",
            "merged_into",
            "aliases",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_path(self, tag: Tag) -> list[str]:
        return self.context.get("paths", {}).get(tag.pk, [tag.name])


class TagCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    parent = serializers.PrimaryKeyRelatedField(queryset=Tag.objects.all(), required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class TagUpdateSerializer(serializers.Serializer):
    """PATCH: every field optional; ``name`` renames, ``parent`` moves, ``is_active`` (de)activates."""

    name = serializers.CharField(max_length=200, required=False)
    parent = serializers.PrimaryKeyRelatedField(queryset=Tag.objects.all(), required=False, allow_null=True)
    is_active = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class TagAliasCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)


class TagAliasSerializer(serializers.ModelSerializer):
    class Meta:
        model = TagAlias
        fields = ["id", "name", "normalized_name", "tag", "created_at"]
        read_only_fields = fields


class TagMergeSerializer(serializers.Serializer):
    into = serializers.PrimaryKeyRelatedField(
        queryset=Tag.objects.all(), help_text="The tag that absorbs this one (it must be active, not merged)."
    )


# --- products ------------------------------------------------------------------------------------------


class ProductListSerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField(help_text="Canonical names of the active approved tags.")
    suggested_by = serializers.SlugRelatedField(slug_field="version", read_only=True, allow_null=True)

    class Meta:
        model = Product
        fields = [
            "external_id",
            "title",
            "brand",
            "lang",
            "review_status",
            "tags",
            "suggested_by",
            "created_at",
            "updated_at",
            "tags_updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, product: Product) -> list[str]:
        return [approved.tag.name for approved in product.approved_tags.all() if approved.tag.is_active]


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


# --- imports and exports ----------------------------------------------------------------------------------


class ImportRowErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    field = serializers.CharField()
    reason = serializers.CharField()


class ImportJobSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    errors = ImportRowErrorSerializer(many=True, read_only=True, help_text="Rejected rows (the first ones).")

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
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


# --- users and tokens ------------------------------------------------------------------------------------


def role_of(user) -> str | None:
    """The user's role from prefetched groups (no query per user in lists)."""
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    if ADMIN in names:
        return ADMIN
    return OPERATOR if OPERATOR in names else None


class UserSerializer(serializers.ModelSerializer):
    email = serializers.CharField(read_only=True, help_text="May be empty.")
    role = serializers.SerializerMethodField()
    has_token = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "role", "is_active", "has_token", "date_joined", "last_login"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ROLES, allow_null=True))
    def get_role(self, user) -> str | None:
        return role_of(user)

    def get_has_token(self, user) -> bool:
        return hasattr(user, "auth_token")


class UserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    role = serializers.ChoiceField(choices=ROLES)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class UserCreatedSerializer(UserSerializer):
    token = serializers.CharField(read_only=True, help_text="The new user's API token (shown once).")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send as `Authorization: Token <token>`.")
