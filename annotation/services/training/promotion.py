"""Promotion: compare a candidate with the active version on the same validation slice; activation and rollback."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import (
    OPEN_JOB_STATUSES,
    JobStatus,
    ModelState,
    ModelVersion,
    Product,
    ReviewStatus,
    SuggestionRefresh,
)
from annotation.services.model_files import artifact_dir
from annotation.services.suggestions import suggestions_refresh_start

logger = logging.getLogger(__name__)


class ModelVersionNotReady(ValueError):
    """Only a READY model version can be activated."""


def promotion_decision(comparison: dict[str, Any]) -> tuple[bool, str]:
    """The promotion rule: whether a freshly trained candidate becomes the active version, and why.

    With ``MODEL_PROMOTION=auto`` the candidate is promoted when there is no active version, or when its
    micro-F1 on the validation slice is at least the active version's on the same slice; an active
    version that could not be scored is kept (an admin decides). Otherwise an admin activates by hand.
    """
    promote_auto = settings.MODEL_PROMOTION == "auto"
    active_f1 = comparison["active_micro_f1"]
    active_error = comparison.get("active_error")
    promote = (
        promote_auto
        and not active_error
        and (active_f1 is None or comparison["candidate_micro_f1"] >= active_f1)
    )
    if not promote_auto:
        decision = "manual: waiting for an admin to activate it"
    elif active_error:
        decision = (
            f"kept {comparison['active_version']}: could not score it ({active_error}); activate by hand"
        )
    elif promote:
        decision = "promoted" if active_f1 is not None else "promoted (no active version)"
    else:
        decision = f"kept {comparison['active_version']}: lower micro-F1 on the same validation slice"
    return promote, decision


# --------------------------------------------------------------------------------------------------
# Activation (promotion and rollback)
# --------------------------------------------------------------------------------------------------


def model_version_activate(*, version: ModelVersion, user=None) -> ModelVersion:
    """Make ``version`` (READY) the active tagger: its suggestions are computed for every unreviewed product
    in batches, and the UI shows only the active version's suggestions. Rollback is activating an older one."""
    with transaction.atomic():
        version = _activate(version)
    logger.info("model version %s activated by %s", version.version, getattr(user, "username", None))
    return version


def _activate(version: ModelVersion) -> ModelVersion:
    # Lock the versions involved (pk order) so two activations serialize; one_active_model backs this up.
    ids = sorted({version.id, *ModelVersion.objects.filter(is_active=True).values_list("id", flat=True)})
    locked = {v.id: v for v in ModelVersion.objects.select_for_update().filter(id__in=ids).order_by("id")}
    target = locked[version.id]
    if target.state != ModelState.READY:
        raise ModelVersionNotReady(
            f"model version {target.version} is {target.state}; only a ready version can be activated"
        )
    if not artifact_dir(target).is_dir():  # MODEL_DIR/<version>/, where every worker loads it from
        raise ModelVersionNotReady(
            f"model version {target.version} has no artifact at {artifact_dir(target)}"
        )
    if target.is_active:
        return target
    ModelVersion.objects.filter(is_active=True).update(is_active=False)
    target.is_active = True
    target.activated_at = timezone.now()
    target.save(update_fields=["is_active", "activated_at"])
    Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).update(needs_suggestion=True)
    # Refreshes for other versions stop at their next batch (they check the active version).
    SuggestionRefresh.objects.filter(~Q(model_version=target), status__in=OPEN_JOB_STATUSES).update(
        status=JobStatus.FAILED, finished_at=timezone.now()
    )
    suggestions_refresh_start(version=target)
    return target
