"""Tags over REST: list/search for operators; create, rename, move, alias, (de)activate and merge for admins.

Each write is one service call in annotation.services.tags; its ``TagRuleError`` becomes a 400 and its
``TagConflictError`` a 409, both naming the field they are about.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.errors import Conflict, ErrorSerializer
from annotation.api.filters import StrictFilterSet
from annotation.api.permissions import IsAdmin, ReadOperatorWriteAdmin
from annotation.api.taxonomy.serializers import (
    TagAliasCreateSerializer,
    TagAliasSerializer,
    TagCreateSerializer,
    TagMergeSerializer,
    TagSerializer,
    TagUpdateSerializer,
)
from annotation.models import Tag
from annotation.selectors.taxonomy import tag_paths, tag_queryset, tags_matching_text
from annotation.services.tags import (
    TagConflictError,
    TagRuleError,
    tag_alias_add,
    tag_create,
    tag_merge,
    tag_update,
)

CONFLICT = OpenApiResponse(ErrorSerializer, description="The name is taken, or the tag was merged away.")


@contextmanager
def tag_errors() -> Iterator[None]:
    """Translate the taxonomy services' errors to the API's statuses."""
    try:
        yield
    except TagConflictError as exc:
        raise Conflict(str(exc), fields={exc.field: [str(exc)]}) from exc
    except TagRuleError as exc:
        raise ValidationError({exc.field: [str(exc)]}) from exc


def _tag_body(tag: Tag) -> dict:
    tag = tag_queryset().get(pk=tag.pk)
    return TagSerializer(tag, context={"paths": tag_paths([tag.pk])}).data


class TagFilter(StrictFilterSet):
    search = filters.CharFilter(
        method="filter_search", help_text="Text in a tag's name or one of its aliases."
    )
    is_active = filters.BooleanFilter(help_text="Only active (true) or only deactivated (false) tags.")
    parent = filters.NumberFilter(field_name="parent_id", help_text="Children of this tag id.")
    root = filters.BooleanFilter(field_name="parent", lookup_expr="isnull", help_text="Only top-level tags.")
    merged = filters.BooleanFilter(
        field_name="merged_into", lookup_expr="isnull", exclude=True, help_text="Only (or no) merged tags."
    )

    class Meta:
        model = Tag
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return tags_matching_text(queryset, value)


class TagListApi(ListAPIView):
    """Tags by name (keyset on the folded name); ``search`` matches names and aliases. POST creates (admin)."""

    permission_classes = [ReadOperatorWriteAdmin]
    serializer_class = TagSerializer
    filterset_class = TagFilter
    pagination_ordering = "normalized_name"

    def get_queryset(self):
        return tag_queryset()

    def get_serializer_context(self):
        context = super().get_serializer_context()
        page = getattr(self.paginator, "page", None) or []
        context["paths"] = tag_paths(tag.pk for tag in page)
        return context

    @extend_schema(request=TagCreateSerializer, responses={201: TagSerializer, 409: CONFLICT})
    def post(self, request) -> Response:
        serializer = TagCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with tag_errors():
            tag = tag_create(**serializer.validated_data)
        return Response(_tag_body(tag), status=status.HTTP_201_CREATED)


class TagDetailApi(APIView):
    """One tag. PATCH renames (the old name stays an alias), moves, (de)activates or describes it (admin)."""

    permission_classes = [ReadOperatorWriteAdmin]

    @extend_schema(responses=TagSerializer)
    def get(self, request, pk: int) -> Response:
        return Response(_tag_body(get_object_or_404(Tag, pk=pk)))

    @extend_schema(request=TagUpdateSerializer, responses={200: TagSerializer, 409: CONFLICT})
    def patch(self, request, pk: int) -> Response:
        tag = get_object_or_404(Tag, pk=pk)
        serializer = TagUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with tag_errors():
            tag = tag_update(tag=tag, **serializer.validated_data)
        return Response(_tag_body(tag))


class TagAliasApi(APIView):
    """Add another name for a tag (admin). Refused when any tag or alias already has that name."""

    permission_classes = [IsAdmin]

    @extend_schema(request=TagAliasCreateSerializer, responses={201: TagAliasSerializer, 409: CONFLICT})
    def post(self, request, pk: int) -> Response:
        tag = get_object_or_404(Tag, pk=pk)
        serializer = TagAliasCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with tag_errors():
            alias = tag_alias_add(tag=tag, name=serializer.validated_data["name"])
        return Response(TagAliasSerializer(alias).data, status=status.HTTP_201_CREATED)


class TagMergeApi(APIView):
    """Merge this tag into ``into`` (admin): approved tags, suggestions and audit references move atomically;
    this tag becomes an inactive alias of the target. Returns the target."""

    permission_classes = [IsAdmin]

    @extend_schema(request=TagMergeSerializer, responses={200: TagSerializer, 409: CONFLICT})
    def post(self, request, pk: int) -> Response:
        source = get_object_or_404(Tag, pk=pk)
        serializer = TagMergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with tag_errors():
            target = tag_merge(source=source, target=serializer.validated_data["into"])
        return Response(_tag_body(target))
