"""Suggestions: recompute the active model's tag scores for products flagged ``needs_suggestion``."""

from __future__ import annotations


def suggestions_refresh_request() -> None:
    """Ask for a suggestion refresh of flagged products with the active model (no-op without one)."""
    from annotation.models import ModelVersion

    if not ModelVersion.objects.filter(is_active=True).exists():
        return
    raise NotImplementedError("suggestion refresh lands with the learning loop")
