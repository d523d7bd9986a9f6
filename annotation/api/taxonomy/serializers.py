"""Input and output shapes of the taxonomy API: tags, aliases, merges."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import (
    Tag,
    TagAlias,
)


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
