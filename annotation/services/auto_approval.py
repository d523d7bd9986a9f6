"""Precision-gated auto-approval: the model approves what it is sure of, an audit keeps it honest.

Off by default. An admin sets a target precision (e.g. 0.98), a confidence level, an audit share and the
evidence a tag needs for a cut of its own (``auto_approval_settings_set``; REST ``PUT /api/v1/auto-approval/``,
the models page). Then, after every suggestion refresh and every settings change, a background pass
(``auto_approval_run``, task ``auto_approval_run``) does, for the active version:

1. **Evidence.** (tag, score, the tag applies) pairs from the version's held-out slice (written by
   ``mlcore.training`` into the artifact: ``validation_scores.json``), from its own training products
   scored out of fold (``out_of_fold_scores.json``: the default tagger cross-fits its parts and its
   blend, so each of those products has scores from models that never saw it, through the same blend,
   thresholds and post-processing as a suggestion; see ``HybridTagger.out_of_fold_suggestions``), and
   from reviews of products whose card showed this version's suggestions (applies = the reviewer's final
   tags hold it): by default only the reviews of its audit draws, a random sample; setting
   ``review_evidence="all"`` adds every review. All of it is out of sample. The slice alone is 15% of
   the labelled products (15 products at 100 labels, 300 at 2,000) while a cut at 0.98 / 95% needs 149
   right pairs above it: without the out-of-fold scores a version approved nothing before ~1,000 labels
   and, living 200 reviews, its audit reviews came too late to help it. The fold models saw a third fewer
   products than the version, so their scores are if anything less sure (on 200 toys products: top-1 precision
   0.68 out of fold, 0.71 on unseen products, 1.0 on the version's own training products). The default
   stays ``"audits"``: the other reviews are the queue's choice, which puts the products the model most
   likely got wrong first; counting them keeps the bound valid (they under-state precision) but costs
   approvals for nothing (600 queue-ordered reviews removed every cut a held-out slice had found), and
   with out-of-fold scores a version no longer waits on reviews for evidence.
2. **Cuts.** ``mlcore.autoapprove.find_cuts``: per tag with ``min_tag_evidence`` pairs, else global; a
   cut is where the Clopper-Pearson lower bound of precision meets the target (fixed-sequence tested).
3. **Approval.** On each unreviewed product under no live claim whose current suggestions are this
   version's, every (product, tag) pair scoring at or above its tag's cut becomes a ``ProductTag`` with
   source ``model`` and the version (no person). **Leaving the queue:** a product whose every stored
   suggestion is decided with confidence (approved, or at or below the reject cut) and that got at least
   one approval takes review status ``auto`` and leaves the review queue. A product with any unsure
   suggestion stays in the queue; its card shows the approved pairs already checked.
4. **Audit.** Of the products the version approved, a random share (``audit_share``, at least
   ``audit_min_products``, and enough of them to hold ``min_pairs`` approved pairs so the bound can
   decide) is drawn into the front of the queue (``queue.AUDIT_PRIORITY``), status ``unreviewed``.
5. **Stop rule.** When a version's audit fails (``selectors.auto_approval.audit_verdict``: lower bound
   below the target once the audit is complete enough, or upper bound below it at any time; the
   ``stop_rule`` setting "upper_bound" keeps only the latter), approvals
   stop until an admin turns auto-approval on again; the pages say which version and the figures.

**A person's review wins.** When a product carrying model-approved pairs is reviewed (audit or not), the
pairs the reviewer kept become ``review`` rows approved by them, the others are removed like any unchecked
tag; an audited product's outcome (pairs seen, kept, tags added) is recorded on its audit row. Undoing
that review restores the model rows and reopens the audit.

**Revert** (``auto_approval_revert``, one transaction): removes every pair of the version that is still
``model`` (no person confirmed it), returns its ``auto`` products to the queue, cancels its audits not yet
reviewed, and marks the version reverted: it approves nothing again.

Model-approved rows are never training data (``training.data``) and are exported with source ``model``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from annotation.jobs import auto_approval_run_enqueue
from annotation.models import (
    AutoApprovalAudit,
    AutoApprovalVersion,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Setting,
    Suggestion,
    TagSource,
)
from annotation.selectors.auto_approval import (
    PENDING_KEY,
    REVIEW_EVIDENCE,
    SETTINGS_KEY,
    STOP_KEY,
    STOP_RULES,
    AutoApprovalSettings,
    audit_figures,
    auto_approval_settings,
    auto_approval_stop,
)
from annotation.services.model_files import artifact_dir
from annotation.services.queue import AUDIT_PRIORITY, queue_priorities_request
from annotation.services.suggestions import version_tag_ids
from mlcore.autoapprove import (
    OUT_OF_FOLD_SCORES_FILE,
    VALIDATION_SCORES_FILE,
    CutTable,
    exit_gate,
    find_cuts,
    min_pairs,
    product_decision,
)

logger = logging.getLogger(__name__)

_BATCH = 2_000
_ADVISORY_KEY = 0x7A675F6175746F61  # "zg_autoa": one pass at a time per database


class AutoApprovalSettingsError(ValueError):
    """A setting out of range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def _number(field: str, value: Any, *, low: float, high: float, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AutoApprovalSettingsError(field, f"{field} must be a number, got {value!r}")
    if integer and value != int(value):
        raise AutoApprovalSettingsError(field, f"{field} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise AutoApprovalSettingsError(field, f"{field} must be between {low:g} and {high:g}, got {value!r}")
    return int(value) if integer else float(value)


def _validated(current: AutoApprovalSettings, changes: dict[str, Any]) -> AutoApprovalSettings:
    values = current.as_dict()
    for field, value in changes.items():
        if field == "enabled":
            if not isinstance(value, bool):
                raise AutoApprovalSettingsError(field, f"enabled must be true or false, got {value!r}")
            values[field] = value
        elif field == "target_precision":
            values[field] = _number(field, value, low=0.5, high=0.9999)
        elif field == "confidence":
            values[field] = _number(field, value, low=0.5, high=0.999)
        elif field == "audit_share":
            values[field] = _number(field, value, low=0.0001, high=1.0)
        elif field == "audit_min_products":
            values[field] = _number(field, value, low=1, high=100_000, integer=True)
        elif field == "min_tag_evidence":
            values[field] = _number(field, value, low=1, high=10_000_000, integer=True)
        elif field == "review_evidence":
            if value not in REVIEW_EVIDENCE:
                raise AutoApprovalSettingsError(
                    field, f"review_evidence must be one of {', '.join(REVIEW_EVIDENCE)}, got {value!r}"
                )
            values[field] = value
        elif field == "stop_rule":
            if value not in STOP_RULES:
                raise AutoApprovalSettingsError(
                    field, f"stop_rule must be one of {', '.join(STOP_RULES)}, got {value!r}"
                )
            values[field] = value
        else:
            raise AutoApprovalSettingsError(field, f"unknown setting {field!r}")
    return AutoApprovalSettings(**values)


def auto_approval_settings_set(*, user=None, **changes: Any) -> AutoApprovalSettings:
    """Change some settings (the others keep their values). Turning it on (again) clears a stop: the admin
    resumes knowingly, and the next pass applies the stop rule afresh (a version still failing its audit
    stops it again; revert that version first). A pass runs in the background when it is on."""
    with transaction.atomic():
        Setting.objects.select_for_update().filter(key=SETTINGS_KEY).first()
        current = auto_approval_settings()
        updated = _validated(current, changes)
        now = timezone.now()
        Setting.objects.update_or_create(
            key=SETTINGS_KEY,
            defaults={
                "value": updated.as_dict(),
                "updated_at": now,
                "updated_by": user if user is not None and user.is_authenticated else None,
            },
        )
        if changes.get("enabled") is True:
            Setting.objects.filter(key=STOP_KEY).delete()
        if updated.enabled:
            auto_approval_request()
    return updated


def auto_approval_request() -> None:
    """Run a pass in the background once the caller's transaction commits."""
    now = timezone.now()
    Setting.objects.update_or_create(key=PENDING_KEY, defaults={"value": now.isoformat(), "updated_at": now})
    auto_approval_run_enqueue()


# --------------------------------------------------------------------------------------------------
# Evidence and cuts
# --------------------------------------------------------------------------------------------------


# One evidence product: its stored suggestions (tag id, score) and its gold tags (tag ids; a gold name the
# version does not know stays a ("name", ...) key, which no suggestion matches).
EvidenceProduct = tuple[list[tuple[int, float]], set]


def validation_evidence(version: ModelVersion) -> list[EvidenceProduct]:
    """The version's held-out slice: per product its top-20 scores and gold tags; empty when the artifact
    has no scores (trained before they were kept, or refit on everything)."""
    return _scores_file_evidence(version, VALIDATION_SCORES_FILE)


def out_of_fold_evidence(version: ModelVersion) -> list[EvidenceProduct]:
    """The version's own training products scored by the models it fitted without them (the default
    tagger's cross-fitting: ``mlcore.tagger.base.ScoredTagger.out_of_fold_suggestions``), same shape as
    :func:`validation_evidence`; empty for a tagger without such models or an older artifact."""
    return _scores_file_evidence(version, OUT_OF_FOLD_SCORES_FILE)


def _scores_file_evidence(version: ModelVersion, name: str) -> list[EvidenceProduct]:
    path = artifact_dir(version) / name
    try:
        with open(path, encoding="utf-8") as fh:
            rows = json.load(fh)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable scores (%s); no evidence from it", path, exc)
        return []
    tag_ids = version_tag_ids(version)
    products = []
    for row in rows:
        gold = {tag_ids.get(name, ("name", name)) for name in row.get("tags") or ()}
        scores = [
            (tag_ids[name], min(1.0, max(0.0, float(score))))
            for name, score, *_ in row.get("scores") or ()
            if name in tag_ids
        ]
        products.append((scores, gold))
    return products


def review_evidence(version: ModelVersion, *, audits_only: bool = True) -> list[EvidenceProduct]:
    """Standing reviews whose card showed the version's suggestions: the suggestions and the final tags.
    ``audits_only``: only the reviews of the version's audit draws (a random sample; see the
    ``review_evidence`` setting)."""
    products = []
    events = ReviewEvent.objects.filter(
        action=ReviewAction.SUBMIT, model_version=version, reverted_by__isnull=True
    )
    if audits_only:
        events = events.filter(
            id__in=AutoApprovalAudit.objects.filter(model_version=version, review_event__isnull=False).values(
                "review_event_id"
            )
        )
    events = events.values_list("shown", "final_tags")
    for shown, final_tags in events.iterator(chunk_size=2_000):
        ids = {row["tag"]: int(row["tag_id"]) for row in shown or () if row.get("tag_id") is not None}
        scores = [
            (int(row["tag_id"]), min(1.0, max(0.0, float(row["score"]))))
            for row in shown or ()
            if row.get("model_version") == version.version and row.get("tag_id") is not None
        ]
        if scores:
            products.append((scores, {ids.get(name, ("name", name)) for name in final_tags or ()}))
    return products


def _pairs(products: Iterable[EvidenceProduct]) -> list[tuple[int, float, bool]]:
    return [(tag, score, tag in gold) for scores, gold in products for tag, score in scores]


def version_cuts(version: ModelVersion, settings: AutoApprovalSettings) -> tuple[CutTable, dict[str, Any]]:
    """The version's cut table from all its evidence, and what the evidence was (counts, the exit gate)."""
    validation = validation_evidence(version)
    out_of_fold = out_of_fold_evidence(version)
    held_out = validation + out_of_fold
    reviewed = review_evidence(version, audits_only=settings.review_evidence == "audits")
    held_out_pairs, reviewed_pairs = _pairs(held_out), _pairs(reviewed)
    cuts = find_cuts(
        held_out_pairs + reviewed_pairs,
        target=settings.target_precision,
        confidence=settings.confidence,
        min_tag_evidence=settings.min_tag_evidence,
    )
    gate = exit_gate(held_out + reviewed, cuts)
    evidence = {
        "validation_products": len(validation),
        "validation_pairs": sum(len(scores) for scores, _ in validation),
        "out_of_fold_products": len(out_of_fold),
        "out_of_fold_pairs": sum(len(scores) for scores, _ in out_of_fold),
        "review_products": len(reviewed),
        "review_pairs": len(reviewed_pairs),
        "tags_with_own_cut": sum(1 for c in cuts.per_tag.values() if c.approve is not None),
        "exit": gate.as_dict(),
    }
    return cuts, evidence


def _cuts_json(cuts: CutTable) -> dict[str, Any]:
    return {
        "target": cuts.target,
        "confidence": cuts.confidence,
        "min_tag_evidence": cuts.min_tag_evidence,
        "global": cuts.global_.as_dict(),
        "per_tag": {str(tag): c.as_dict() for tag, c in cuts.per_tag.items()},
    }


# --------------------------------------------------------------------------------------------------
# The pass
# --------------------------------------------------------------------------------------------------


@dataclass
class PassResult:
    skipped: str = ""
    version: str = ""
    pairs_approved: int = 0
    products_approved: int = 0
    products_out_of_queue: int = 0
    # Products whose every stored suggestion was decided (approved or rejected), whether or not the exit
    # gate let them leave the queue: how many the gate holds back is this minus products_out_of_queue.
    products_confident: int = 0
    audits_drawn: int = 0
    seconds: float = 0.0


def auto_approval_run() -> PassResult:
    """One pass for the active version (see the module docstring). Safe to run twice: pairs already
    approved are skipped, a drawn product is drawn once. Returns what it did (logs, tests, the bench)."""
    started = time.monotonic()
    with _one_at_a_time():
        pending = Setting.objects.filter(key=PENDING_KEY).values_list("value", flat=True).first()
        result = _run()
        if pending is not None:
            Setting.objects.filter(key=PENDING_KEY, value=pending).delete()
    result.seconds = round(time.monotonic() - started, 2)
    logger.info("auto-approval pass: %s", result)
    return result


def _run() -> PassResult:
    settings = auto_approval_settings()
    if not settings.enabled:
        return PassResult(skipped="off")
    if auto_approval_stop() is not None or _stop_if_failing(settings):
        return PassResult(skipped="stopped")
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        return PassResult(skipped="no active version")
    record, _ = AutoApprovalVersion.objects.get_or_create(model_version=version)
    if record.reverted_at is not None:
        return PassResult(skipped="version reverted", version=version.version)
    cuts, evidence = version_cuts(version, settings)
    record.cuts = _cuts_json(cuts)
    record.evidence = evidence
    record.computed_at = timezone.now()
    record.save(update_fields=["cuts", "evidence", "computed_at"])
    result = PassResult(version=version.version)
    if cuts.global_.approve is not None or evidence["tags_with_own_cut"]:
        candidates = list(
            _candidates(version).order_by("id").values_list("id", flat=True).iterator(chunk_size=20_000)
        )
        may_leave = bool(evidence["exit"]["passes"])
        for start in range(0, len(candidates), _BATCH):
            _approve_batch(
                version, record, cuts, candidates[start : start + _BATCH], result, may_leave=may_leave
            )
    result.audits_drawn = audit_draw(version=version, settings=settings)
    # What this pass did next to what it stood on (the models page, the bench, a puzzled admin).
    evidence["last_pass"] = {
        "pairs_approved": result.pairs_approved,
        "products_approved": result.products_approved,
        "products_confident": result.products_confident,
        "products_out_of_queue": result.products_out_of_queue,
        "audits_drawn": result.audits_drawn,
    }
    AutoApprovalVersion.objects.filter(id=record.id).update(evidence=evidence)
    if result.pairs_approved or result.audits_drawn:
        with transaction.atomic():
            queue_priorities_request()
    return result


def _candidates(version: ModelVersion, *, now=None):
    """Unreviewed products under no live claim whose current suggestions are ``version``'s, not waiting
    for their audit review."""
    now = now or timezone.now()
    return (
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED, suggested_by=version)
        .filter(Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lt=now))
        .exclude(id__in=AutoApprovalAudit.objects.filter(reviewed_at__isnull=True).values("product_id"))
    )


def _approve_batch(
    version: ModelVersion,
    record: AutoApprovalVersion,
    cuts: CutTable,
    ids: Sequence[int],
    result: PassResult,
    *,
    may_leave: bool,
) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Re-checked under the row locks: a product claimed or reviewed since it was listed is left alone,
        # and one an operator is claiming right now is skipped rather than waited for.
        locked = list(
            _candidates(version, now=now)
            .filter(id__in=ids)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .values_list("id", flat=True)
        )
        if not locked:
            return
        suggestions: dict[int, list[tuple[int, float]]] = {}
        for product_id, tag_id, score in (
            Suggestion.objects.filter(product_id__in=locked, model_version=version)
            .order_by("product_id", "-score")
            .values_list("product_id", "tag_id", "score")
        ):
            suggestions.setdefault(product_id, []).append((tag_id, score))
        existing: dict[int, set[int]] = {}
        had_model_pair: set[int] = set()
        for product_id, tag_id, source, version_id in ProductTag.objects.filter(
            product_id__in=locked
        ).values_list("product_id", "tag_id", "source", "model_version_id"):
            existing.setdefault(product_id, set()).add(tag_id)
            if source == TagSource.MODEL and version_id == version.id:
                had_model_pair.add(product_id)
        new_rows: list[ProductTag] = []
        touched: set[int] = set()
        confident: list[int] = []
        for product_id, rows in suggestions.items():
            decision = product_decision(rows, cuts)
            fresh = [t for t in decision.approved if t not in existing.get(product_id, set())]
            for tag_id in fresh:
                new_rows.append(
                    ProductTag(
                        product_id=product_id,
                        tag_id=tag_id,
                        source=TagSource.MODEL,
                        model_version=version,
                        approved_at=now,
                    )
                )
            if fresh:
                touched.add(product_id)
            if decision.confident:
                result.products_confident += 1
                if may_leave:
                    confident.append(product_id)
        ProductTag.objects.bulk_create(new_rows, ignore_conflicts=True, batch_size=5_000)
        if touched:
            Product.objects.filter(id__in=touched).update(tags_updated_at=now)
        if confident:
            Product.objects.filter(id__in=confident).update(review_status=ReviewStatus.AUTO, priority=0.0)
        newly = len(touched - had_model_pair)
        AutoApprovalVersion.objects.filter(id=record.id).update(
            approved_pairs=record.approved_pairs + len(new_rows),
            approved_products=record.approved_products + newly,
        )
        record.approved_pairs += len(new_rows)
        record.approved_products += newly
    result.pairs_approved += len(new_rows)
    result.products_approved += newly
    result.products_out_of_queue += len(confident)


# --------------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------------


def audit_plan(*, approved_products: int, settings: AutoApprovalSettings) -> int:
    """How many of a version's approved products its audit draws (before the pair floor): the share,
    at least ``audit_min_products`` (or all, when fewer were approved)."""
    if approved_products <= 0:
        return 0
    return max(
        math.ceil(settings.audit_share * approved_products),
        min(settings.audit_min_products, approved_products),
    )


def audit_draw(*, version: ModelVersion, settings: AutoApprovalSettings | None = None) -> int:
    """Draw the version's audit products at random (up to its plan) into the front of the review queue.

    Keeps drawing past the plan while the drawn products hold fewer approved pairs than ``min_pairs``:
    an audit smaller than that cannot clear the target even when every pair is right. Returns how many
    products were drawn now.
    """
    settings = settings or auto_approval_settings()
    record = AutoApprovalVersion.objects.filter(model_version=version).first()
    if record is None or record.reverted_at is not None:
        return 0
    now = timezone.now()
    with transaction.atomic():
        drawn = AutoApprovalAudit.objects.filter(model_version=version).aggregate(
            n=Count("id"), pairs=Sum("approved_pairs")
        )
        wanted = audit_plan(approved_products=record.approved_products, settings=settings) - drawn["n"]
        pair_floor = min_pairs(settings.target_precision, settings.confidence)
        pairs_have = int(drawn["pairs"] or 0)
        if wanted <= 0 and pairs_have >= pair_floor:
            return 0
        pool = (
            ProductTag.objects.filter(
                source=TagSource.MODEL,
                model_version=version,
                product__review_status__in=[ReviewStatus.AUTO, ReviewStatus.UNREVIEWED],
            )
            .filter(Q(product__claim_expires_at__isnull=True) | Q(product__claim_expires_at__lt=now))
            .exclude(
                product_id__in=AutoApprovalAudit.objects.filter(model_version=version).values("product_id")
            )
            .values("product_id")
            .annotate(pairs=Count("id"))
            .order_by("?")  # PostgreSQL: ORDER BY random(), the draw
        )
        chosen: list[tuple[int, int]] = []
        for row in pool.iterator(chunk_size=1_000):
            if len(chosen) >= wanted and pairs_have >= pair_floor:
                break
            chosen.append((row["product_id"], row["pairs"]))
            pairs_have += row["pairs"]
        if not chosen:
            return 0
        AutoApprovalAudit.objects.bulk_create(
            [
                AutoApprovalAudit(product_id=pid, model_version=version, drawn_at=now, approved_pairs=pairs)
                for pid, pairs in chosen
            ],
            ignore_conflicts=True,
        )
        Product.objects.filter(id__in=[pid for pid, _ in chosen]).update(
            review_status=ReviewStatus.UNREVIEWED, priority=AUDIT_PRIORITY
        )
    return len(chosen)


def auto_approval_review_record(
    *,
    product: Product,
    previous: Iterable[ProductTag],
    final_ids: set[int],
    chosen_ids: set[int],
    user,
    event: ReviewEvent,
    now,
) -> None:
    """Called by review_submit inside its transaction, after the product's tags were written.

    The model pairs the reviewer kept become theirs (source ``review``, or ``hierarchy`` when only implied);
    the audit rows waiting for this product get the outcome; a failing audit stops auto-approval."""
    model_rows = [row for row in previous if row.source == TagSource.MODEL]
    if not model_rows:
        return
    kept = [row for row in model_rows if row.tag_id in final_ids]
    for source, rows in (
        (TagSource.REVIEW, [r.id for r in kept if r.tag_id in chosen_ids]),
        (TagSource.HIERARCHY, [r.id for r in kept if r.tag_id not in chosen_ids]),
    ):
        if rows:
            ProductTag.objects.filter(id__in=rows).update(source=source, approved_by=user, approved_at=now)
    previous_ids = {row.tag_id for row in previous}
    added = len(chosen_ids - previous_ids)
    audits = list(
        AutoApprovalAudit.objects.select_for_update().filter(product=product, reviewed_at__isnull=True)
    )
    for audit in audits:
        mine = [row for row in model_rows if row.model_version_id == audit.model_version_id]
        audit.reviewed_at = now
        audit.review_event = event
        audit.audited_pairs = len(mine)
        audit.confirmed_pairs = sum(1 for row in mine if row.tag_id in final_ids)
        audit.added_tags = added
        audit.save(
            update_fields=["reviewed_at", "review_event", "audited_pairs", "confirmed_pairs", "added_tags"]
        )
    if audits:
        _stop_if_failing(auto_approval_settings())


def auto_approval_review_undone(*, event: ReviewEvent) -> None:
    """Called by review_undo: the audit outcome that review gave is withdrawn (the audit waits again)."""
    AutoApprovalAudit.objects.filter(review_event=event).update(
        reviewed_at=None, review_event=None, audited_pairs=None, confirmed_pairs=None, added_tags=None
    )


def _stop_if_failing(settings: AutoApprovalSettings) -> bool:
    """Apply the stop rule to every version not reverted that has audit outcomes; record the first failure."""
    if not settings.enabled or auto_approval_stop() is not None:
        return False
    versions = (
        AutoApprovalVersion.objects.filter(reverted_at__isnull=True)
        .filter(model_version__auto_audits__reviewed_at__isnull=False)
        .select_related("model_version")
        .distinct()
        .order_by("model_version_id")
    )
    for record in versions:
        figures = audit_figures(record.model_version_id, settings)
        if not figures.failing:
            continue
        now = timezone.now()
        reason = (
            f"{record.model_version.version}: the audit kept {figures.confirmed} of {figures.pairs} "
            f"model-approved tags (precision {figures.precision:.3f}, lower bound {figures.lower_bound:.3f} "
            f"at {settings.confidence:.0%}), below the target {settings.target_precision:g}"
        )
        Setting.objects.update_or_create(
            key=STOP_KEY,
            defaults={
                "value": {
                    "reason": reason,
                    "version": record.model_version.version,
                    "version_id": record.model_version_id,
                    "at": now.isoformat(),
                    "audit": figures.as_dict(),
                },
                "updated_at": now,
            },
        )
        logger.warning("auto-approval stopped: %s", reason)
        return True
    return False


# --------------------------------------------------------------------------------------------------
# Revert
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevertResult:
    version: str
    pairs_removed: int
    products_returned: int
    audits_cancelled: int


def auto_approval_revert(*, version: ModelVersion, user=None) -> RevertResult:
    """Remove every pair ``version`` approved that no person has confirmed, in one transaction: its
    ``auto`` products return to the queue, its audits not yet reviewed are cancelled, and the version
    is marked reverted so no later pass approves with it again."""
    now = timezone.now()
    with transaction.atomic():
        record, _ = AutoApprovalVersion.objects.select_for_update().get_or_create(model_version=version)
        rows = ProductTag.objects.filter(source=TagSource.MODEL, model_version=version)
        product_ids = list(rows.values_list("product_id", flat=True).distinct())
        pairs_removed, _ = rows.delete()
        returned = Product.objects.filter(id__in=product_ids, review_status=ReviewStatus.AUTO).update(
            review_status=ReviewStatus.UNREVIEWED, priority=0.0
        )
        Product.objects.filter(id__in=product_ids).update(tags_updated_at=now)
        waiting = AutoApprovalAudit.objects.filter(model_version=version, reviewed_at__isnull=True)
        # Their products stay unreviewed (in the queue) at the priority the next ranking gives them.
        Product.objects.filter(
            id__in=waiting.values("product_id"),
            priority=AUDIT_PRIORITY,
            review_status=ReviewStatus.UNREVIEWED,
        ).update(priority=0.0)
        cancelled, _ = waiting.delete()
        record.reverted_at = now
        record.reverted_by = user if user is not None and getattr(user, "is_authenticated", False) else None
        record.save(update_fields=["reverted_at", "reverted_by"])
        queue_priorities_request()
    logger.info(
        "auto-approvals of %s reverted by %s: %d pairs, %d products back in the queue",
        version.version,
        getattr(user, "username", None),
        pairs_removed,
        returned,
    )
    return RevertResult(
        version=version.version,
        pairs_removed=pairs_removed,
        products_returned=returned,
        audits_cancelled=cancelled,
    )


class _one_at_a_time:
    """A PostgreSQL session advisory lock: two passes never approve side by side. A no-op on SQLite."""

    def __enter__(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [_ADVISORY_KEY])

    def __exit__(self, *exc) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_KEY])
