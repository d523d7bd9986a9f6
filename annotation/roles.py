"""Roles are groups with permissions: operator (reviews) and admin (everything)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

OPERATOR = "operator"
ADMIN = "admin"
ROLES = (OPERATOR, ADMIN)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    OPERATOR: ("review_product",),
    ADMIN: ("review_product", "manage_tags", "manage_models", "run_imports", "run_exports", "manage_users"),
}


def roles_ensure() -> None:
    """Create the role groups and (re)assign their permissions; safe to run any number of times."""
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = Permission.objects.filter(content_type__app_label="annotation", codename__in=codenames)
        group.permissions.set(permissions)


def user_role(user) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser or user.groups.filter(name=ADMIN).exists():
        return ADMIN
    if user.groups.filter(name=OPERATOR).exists():
        return OPERATOR
    return None


def is_admin(user) -> bool:
    return user_role(user) == ADMIN


def is_operator(user) -> bool:
    """Operators and admins both review."""
    return user_role(user) in ROLES
