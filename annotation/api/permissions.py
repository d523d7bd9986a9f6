"""Role permissions for the API (roles are groups; see annotation.roles)."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from annotation.roles import is_admin, is_operator


class IsOperator(BasePermission):
    """Operators and admins: review, read products/tags/suggestions."""

    message = "This needs the operator or admin role."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and is_operator(request.user))


class IsAdmin(BasePermission):
    message = "This needs the admin role."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and is_admin(request.user))


class ReadOperatorWriteAdmin(BasePermission):
    """Reads for operators and admins, writes for admins only (tags, taxonomy)."""

    message = "Changing this needs the admin role."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return is_operator(user) if request.method in SAFE_METHODS else is_admin(user)
