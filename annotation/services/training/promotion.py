"""Promotion: compare a candidate with the active version on the same validation slice; activation and rollback."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from annotation.services.training.data import TrainingData, _valid_records
from mlcore.inference import load_model, predict
from mlcore.metrics import evaluate_tag_sets

logger = logging.getLogger(__name__)


class ModelVersionNotReady(ValueError):
    """Only a READY model version can be activated."""


def model_micro_f1(artifact: Path | str, records: Sequence) -> float:
    """Micro-F1 of the model in ``artifact`` on ``records`` (their gold ``tags``), over selected tags."""
    model = load_model(str(artifact))
    scored = predict(model, list(records), top_k=20)
    selected = [[s.tag for s in row if s.selected] for row in scored]
    return float(evaluate_tag_sets([r.tags for r in records], selected, per_tag=False)["micro_f1"])


def _promotion_comparison(candidate_dir: Path, result, data: TrainingData) -> dict[str, Any]:
    """Candidate and active micro-F1 on the candidate's validation slice, computed the same way.

    mlcore measured the candidate on exactly this slice (``valid_ids``; selected tags of ``suggest``
    against the gold tags, ``mlcore.metrics``); the active version is scored here the same way.
    """
    valid = _valid_records(data)
    candidate_f1 = result.metrics.get("micro_f1")
    if candidate_f1 is None or result.n_valid != len(valid):
        candidate_f1 = model_micro_f1(candidate_dir, valid)
    active = ModelVersion.objects.filter(is_active=True).first()
    comparison: dict[str, Any] = {
        "slice_size": len(valid),
        "candidate_micro_f1": float(candidate_f1),
        "active_version": active.version if active else None,
        "active_micro_f1": None,
    }
    if active is not None:
        try:
            comparison["active_micro_f1"] = model_micro_f1(artifact_dir(active), valid)
        except Exception as exc:  # a missing or unloadable active artifact: the admin decides
            logger.exception("could not score the active version %s", active.version)
            comparison["active_error"] = f"{type(exc).__name__}: {exc}"
    return comparison


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
