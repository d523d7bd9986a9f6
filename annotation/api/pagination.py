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
