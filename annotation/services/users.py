"""Users and API tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from rest_framework.authtoken.models import Token

from annotation.roles import ADMIN, ROLES, roles_ensure


def user_create(*, username: str, password: str, role: str, email: str = "", validate: bool = True):
    """Create a user with a role and an API token. Returns (user, token key)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, email=email, is_staff=(role == ADMIN))
    if validate:
        validate_password(password, user)
    with transaction.atomic():
        roles_ensure()
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=role))
        token = Token.objects.create(user=user)
    return user, token.key


def token_rotate(*, user) -> str:
    """Replace the user's API token; the old one stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user).key


def token_revoke(*, user) -> None:
    Token.objects.filter(user=user).delete()
