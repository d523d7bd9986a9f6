"""Account reads: users as the API shows them (role from their groups, token state)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db.models import QuerySet


def user_queryset() -> QuerySet[AbstractUser]:
    """Users with their groups (the role) prefetched and their API token joined."""
    return get_user_model().objects.prefetch_related("groups").select_related("auth_token")


def user_exists(*, username: str) -> bool:
    return get_user_model().objects.filter(username=username).exists()
