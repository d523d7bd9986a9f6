"""Roles are groups with permissions: operator (reviews) and admin (everything)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

OPERATOR = "operator"
ADMIN = "admin"
ROLES = (OPERATOR, ADMIN)
_UNSET = object()

# What the Django admin site (annotation/admin.py) shows a role admin: every TagStudio model it registers,
# read-only except a tag's description and the tag (de)activate actions. Add and delete stay refused by the
# ModelAdmins themselves (tags, aliases and versions change through the services and their pages).
ADMIN_SITE_PERMISSIONS: tuple[str, ...] = (
    "view_tag",
    "change_tag",
    "view_tagalias",
    "view_modelversion",
    "view_importjob",
    "view_trainingjob",
    "view_exportjob",
    "view_suggestionrefresh",
    "view_setting",
)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    OPERATOR: ("review_product",),
    ADMIN: (
        "review_product",
        "manage_tags",
        "manage_models",
        "run_imports",
        "run_exports",
        "manage_users",
        *ADMIN_SITE_PERMISSIONS,
    ),
}


def roles_ensure() -> None:
    """Create the role groups and (re)assign their permissions; safe to run any number of times.

    Runs after every migrate (annotation/apps.py), so an existing deployment's admins gain the admin-site
    permissions and staff flag on its next migrate, without a data migration.
    """
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = Permission.objects.filter(content_type__app_label="annotation", codename__in=codenames)
        group.permissions.set(permissions)
    # The admin site admits staff only; a role admin is staff (user_create sets it, this mends older rows).
    get_user_model().objects.filter(groups__name=ADMIN, is_staff=False).update(is_staff=True)


def user_role(user) -> str | None:
    """The user's role, read once per user object (a request asks several times: one query, not six)."""
    if not user.is_authenticated:
        return None
    cached = getattr(user, "_tagstudio_role", _UNSET)
    if cached is not _UNSET:
        return cached
    if user.is_superuser:
        role = ADMIN
    else:
        groups = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        role = ADMIN if ADMIN in groups else OPERATOR if OPERATOR in groups else None
    user._tagstudio_role = role
    return role


def is_admin(user) -> bool:
    return user_role(user) == ADMIN


def is_operator(user) -> bool:
    """Operators and admins both review."""
    return user_role(user) in ROLES
