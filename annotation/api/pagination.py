"""Keyset (cursor) pagination for every API list: page N of 1,000,000 rows costs the same as page 1.

The query for a page is ``WHERE key < last_key ORDER BY key LIMIT n + 1`` — no OFFSET — so it is one index
range scan wherever the page is. A view picks its key with ``pagination_ordering`` (default ``-id``); the
key must be unique and indexed. ``page_size`` is capped at ``API_MAX_PAGE_SIZE`` (larger values are
lowered to the cap); a malformed ``cursor`` or ``page_size`` is a 400, not a silent first page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from annotation.selectors.search import SEARCH_ORDERS, SearchCursorError, search_count, search_page


class KeysetPagination(CursorPagination):
    ordering = "-id"
    page_size_query_param = "page_size"
    page_size_query_description = (
        "Number of results per page (1 to API_MAX_PAGE_SIZE; larger values are capped)."
    )
    cursor_query_description = "Opaque position from the `next` or `previous` link of the page before."

    @property
    def max_page_size(self) -> int:  # read at request time so settings overrides apply
        return settings.API_MAX_PAGE_SIZE

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "pagination_ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValidationError({self.page_size_query_param: ["Must be a positive integer."]})
        return min(size, self.max_page_size)

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from exc

    def paginate_queryset(self, queryset, request, view=None):
        # A hand-made cursor can carry a position of the wrong type (``p=abc`` for an integer key):
        # check it against the key's field before the database sees it.
        self.base_url = request.build_absolute_uri()
        cursor = self.decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            field_name = self.get_ordering(request, queryset, view)[0].lstrip("-")
            try:
                queryset.model._meta.get_field(field_name).to_python(cursor.position)
            except DjangoValidationError as exc:
                raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from exc
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["required"] = ["next", "previous", "results"]
        return response


class SearchPagination(KeysetPagination):
    """The product list's pages: a keyset over (the chosen order's key, id) in either direction, with the
    total count of the filter (exact up to 100,000 when cheap, else an estimate, labelled: search_count).

    The order is the ``ordering`` parameter, already checked by the view's filter set
    (``annotation.selectors.search.SEARCH_ORDERS``); the pages come from ``selectors.search.search_page``,
    the count from ``search_count``. A cursor records its order: one from another order is a 400.
    """

    ordering_query_param = "ordering"

    def paginate_queryset(self, queryset, request, view=None):
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        order = SEARCH_ORDERS[request.query_params.get(self.ordering_query_param) or "-id"]
        self.count = search_count(queryset.prefetch_related(None))
        try:
            page = search_page(
                queryset,
                order,
                cursor=request.query_params.get(self.cursor_query_param, ""),
                page_size=self.page_size,
            )
        except SearchCursorError as exc:
            raise ValidationError({self.cursor_query_param: [str(exc)]}) from exc
        self.next_cursor, self.previous_cursor = page.next_cursor, page.previous_cursor
        return page.rows

    def _link(self, cursor: str | None) -> str | None:
        return None if cursor is None else replace_query_param(self.base_url, self.cursor_query_param, cursor)

    def get_next_link(self):
        return self._link(self.next_cursor)

    def get_previous_link(self):
        return self._link(self.previous_cursor)

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.count.value,
                "count_is_estimate": self.count.is_estimate,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"] = {
            "count": {
                "type": "integer",
                "description": "Products matching the filter: exact up to 100,000 when counting them is cheap; "
                "otherwise an estimate (PostgreSQL's planner, or a fixed sample of the catalog): see "
                "count_is_estimate.",
            },
            "count_is_estimate": {
                "type": "boolean",
                "description": "true: count is an estimate (above 100,000 products, or too costly to count "
                "exactly); false: count is exact.",
            },
            **response["properties"],
        }
        response["required"] = ["count", "count_is_estimate", "next", "previous", "results"]
        return response
