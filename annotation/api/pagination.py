"""Keyset (cursor) pagination: page N of 1,000,000 rows costs the same as page 1."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    ordering = "-id"
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # read at request time so tests can override the setting
        return settings.API_MAX_PAGE_SIZE
