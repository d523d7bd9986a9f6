"""Per-taxonomy options an admin sets on the taxonomy page (read by annotation.selectors.taxonomy)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotation.models import Setting
from annotation.selectors.taxonomy import HIERARCHY_CLOSURE_SETTING


def hierarchy_closure_set(*, enabled: bool, user=None) -> bool:
    """Turn hierarchy closure on or off: whether approving a child tag also approves its ancestors.

    Applies to reviews submitted from now on and to suggestions made after the next refresh; tags
    already approved are left as they are (a person decided them).
    """
    with transaction.atomic():
        Setting.objects.update_or_create(
            key=HIERARCHY_CLOSURE_SETTING,
            defaults={
                "value": bool(enabled),
                "updated_at": timezone.now(),
                "updated_by": user if user is not None and user.is_authenticated else None,
            },
        )
    return bool(enabled)
