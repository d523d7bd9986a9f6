"""The catalog over REST: products (a filtered keyset list and a detail page by the merchant's external id)
and catalog imports (admin: upload a JSONL/CSV file, get 202 and a job to poll).

A file that is not JSONL or CSV is refused with 400 before a job or a product is written; a body above
``TAGSTUDIO_MAX_UPLOAD_BYTES`` gets 413 from its Content-Length before it is read (annotation.api.limits).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.catalog.serializers import (
    ImportCreateSerializer,
    ImportJobSerializer,
    ProductDetailSerializer,
    ProductListSerializer,
)
from annotation.api.filters import StrictFilterSet
from annotation.api.limits import LimitedFormParser, LimitedMultiPartParser
from annotation.api.pagination import SearchPagination
from annotation.api.permissions import IsAdmin, IsOperator
from annotation.io.readers import FileFormatError
from annotation.models import Product, ReviewStatus
from annotation.selectors.catalog import (
    import_job_queryset,
    product_detail,
    product_detail_queryset,
    product_list_queryset,
    products_matching_text,
    products_updated_since,
    products_with_tag,
    tag_lookup,
)
from annotation.selectors.search import (
    ORDER_HELP,
    SEARCH_ORDERS,
    SearchParamError,
    product_search_resolve,
    products_search,
)
from annotation.services.imports import import_job_create

_ORDER_CHOICES = [(name, f"{name}: {ORDER_HELP[name]}") for name in SEARCH_ORDERS]


class ProductFilter(StrictFilterSet):
    """The product list's filters. The catalog-search ones (suggested tag, scores, disagreement, category,
    model version, ordering) are checked together by ``selectors.search.product_search_resolve`` in
    ``filter_queryset``: a bad combination is a 400 naming the parameter."""

    status = filters.ChoiceFilter(
        field_name="review_status", choices=ReviewStatus.choices, help_text="Review status."
    )
    tag = filters.CharFilter(
        method="filter_tag",
        help_text="Products with this approved tag (a name or alias; merged tags resolve to their target).",
    )
    q = filters.CharFilter(method="filter_text", help_text="Text in the title, brand or external id.")
    updated_since = filters.IsoDateTimeFilter(
        method="filter_updated_since",
        help_text="ISO-8601: products whose content or approved tags changed at or after this time.",
    )
    suggested_tag = filters.CharFilter(
        method="filter_search",
        help_text="Products the model version (model_version, else the active one) suggests this tag for "
        "(a name or alias). Each product's score for it is what ordering=score/-score sorts by.",
    )
    min_score = filters.NumberFilter(
        method="filter_search", help_text="With suggested_tag: score at least this (0 to 1)."
    )
    max_score = filters.NumberFilter(
        method="filter_search", help_text="With suggested_tag: score at most this (0 to 1)."
    )
    disagreement = filters.BooleanFilter(
        method="filter_search",
        help_text="true: the model selects a tag that is not approved, or a tag is approved that the model "
        "does not select (it scores it below its threshold, or not at all). With suggested_tag: on that "
        "tag only. Reads the suggestions of model_version, else of the active version.",
    )
    category = filters.CharFilter(
        method="filter_search",
        help_text="Category path prefix, levels separated by '>' (e.g. 'Fashion > Shoes'): products whose "
        "category_path starts with these levels (exact, case-sensitive).",
    )
    model_version = filters.CharFilter(
        method="filter_search",
        help_text="A model version name: the products whose current suggestions are that version's; also the "
        "version suggested_tag and disagreement read.",
    )
    ordering = filters.ChoiceFilter(
        method="filter_search",
        choices=_ORDER_CHOICES,
        help_text="Order of the list (id breaks ties): "
        + "; ".join(f"{k}: {v}" for k, v in ORDER_HELP.items()),
    )

    class Meta:
        model = Product
        fields: list[str] = []

    def filter_tag(self, queryset, name, value):
        tag = tag_lookup(value)
        if tag is None:
            raise ValidationError({"tag": [f"Unknown tag {value!r}."]})
        return products_with_tag(queryset, tag)

    def filter_text(self, queryset, name, value):
        return products_matching_text(queryset, value)

    def filter_updated_since(self, queryset, name, value):
        return products_updated_since(queryset, value)

    def filter_search(self, queryset, name, value):
        return queryset  # applied together in filter_queryset (they depend on each other)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        try:
            search = product_search_resolve(
                suggested_tag=data.get("suggested_tag") or "",
                min_score=data.get("min_score"),
                max_score=data.get("max_score"),
                model_version=data.get("model_version") or "",
                disagreement=bool(data.get("disagreement")),
                category=data.get("category") or "",
                order=data.get("ordering") or "-id",
            )
        except SearchParamError as exc:
            raise ValidationError({exc.param: [exc.message]}) from exc
        return products_search(queryset, search)


class ProductListApi(ListAPIView):
    """Products, newest first unless ``ordering`` says otherwise, keyset-paginated, with the filter's total
    count (``count``; ``count_is_estimate`` when it is an estimate: above 100,000 or too costly to count). Filter by status, approved tag, text,
    update time, suggested tag and score range, disagreement, category prefix and model version."""

    permission_classes = [IsOperator]
    serializer_class = ProductListSerializer
    filterset_class = ProductFilter
    pagination_class = SearchPagination

    def get_queryset(self):
        return product_list_queryset()


class ProductDetailApi(APIView):
    """One product: its approved tags with paths, its current suggestions and its review history."""

    permission_classes = [IsOperator]

    @extend_schema(responses=ProductDetailSerializer)
    def get(self, request, external_id: str) -> Response:
        product = get_object_or_404(product_detail_queryset(), external_id=external_id)
        return Response(ProductDetailSerializer(product, context=product_detail(product=product)).data)


# --- imports -----------------------------------------------------------------------------------------------


class ImportListApi(ListAPIView):
    """Import jobs, newest first. POST uploads a catalog file and starts an import job."""

    permission_classes = [IsAdmin]
    serializer_class = ImportJobSerializer
    parser_classes = [LimitedMultiPartParser, LimitedFormParser]

    def get_queryset(self):
        return import_job_queryset()

    @extend_schema(
        request={"multipart/form-data": ImportCreateSerializer}, responses={202: ImportJobSerializer}
    )
    def post(self, request) -> Response:
        serializer = ImportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            job = import_job_create(
                source=upload,
                filename=upload.name,
                ignore_tags=serializer.validated_data["ignore_tags"],
                user=request.user,
            )
        except FileFormatError as exc:
            raise ValidationError({"file": [str(exc)]}) from exc
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(APIView):
    """An import job's state: rows imported, rows rejected and why (line, field, reason)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=ImportJobSerializer)
    def get(self, request, pk: int) -> Response:
        job = get_object_or_404(import_job_queryset(), pk=pk)
        return Response(ImportJobSerializer(job).data)
