from annotation.roles import user_role


def role(request) -> dict:
    """The user's role for templates (navigation shows admin pages to admins only)."""
    current = user_role(request.user) if hasattr(request, "user") else None
    return {"role": current, "is_admin": current == "admin"}
