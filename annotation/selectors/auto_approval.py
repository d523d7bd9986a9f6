"""Auto-approval reads: the admin's settings, whether it stopped and why, and each version's figures
(cuts, approvals, the audit's realised precision with its Clopper-Pearson interval).

The writes and the rules are in annotation.services.auto_approval; the statistics in mlcore.autoapprove.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Count, Q, Sum

from annotation.models import (
    AutoApprovalAudit,
    AutoApprovalVersion,
    ModelVersion,
    Product,
    ProductTag,
    ReviewStatus,
    Setting,
    TagSource,
)
from mlcore.autoapprove import clopper_pearson, min_pairs, precision_lower_bound, precision_upper_bound

SETTINGS_KEY = "auto_approval"
STOP_KEY = "auto_approval_stop"
# Set whenever a pass is requested, cleared by the pass that served it (the job sweeper resends a lost one).
PENDING_KEY = "auto_approval_requested_at"


@dataclass(frozen=True)
class AutoApprovalSettings:
    enabled: bool = False
    target_precision: float = 0.98
    confidence: float = 0.95
    audit_share: float = 0.02
    audit_min_products: int = 50
    # A tag gets its own cuts from this many evidence pairs on; below, it shares the global cut.
    min_tag_evidence: int = 200
    # What stops approvals once a version's audit is complete (see audit_verdict): "lower_bound" (the
    # audit's lower bound below the target: the claim is not confirmed) or "upper_bound" (its upper bound
    # below the target: the audit shows the version misses it).
    stop_rule: str = "lower_bound"
    # Which reviews of a version's cards are evidence for its cuts: "audits" (the audit's random draws:
    # a random sample of what the version approved) or "all" (every review; the queue puts the products
    # the model most likely got wrong first, so that sample is biased towards its errors: measured on
    # myntra_catalog_desc, 600 queue-ordered reviews removed every cut the held-out slice had found).
    review_evidence: str = "audits"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SETTING_FIELDS = tuple(AutoApprovalSettings.__dataclass_fields__)
STOP_RULES = ("lower_bound", "upper_bound")
REVIEW_EVIDENCE = ("audits", "all")


def auto_approval_settings() -> AutoApprovalSettings:
    """The stored settings over the defaults (off by default); unknown stored keys are ignored."""
    stored = Setting.objects.filter(key=SETTINGS_KEY).values_list("value", flat=True).first()
    if not isinstance(stored, dict):
        return AutoApprovalSettings()
    return AutoApprovalSettings(**{k: v for k, v in stored.items() if k in SETTING_FIELDS})


def auto_approval_enabled() -> bool:
    return auto_approval_settings().enabled


def auto_approval_stop() -> dict[str, Any] | None:
    """{"reason", "version", "version_id", "at", "audit"} when the stop rule halted approvals."""
    stored = Setting.objects.filter(key=STOP_KEY).values_list("value", flat=True).first()
    return stored if isinstance(stored, dict) else None


def auto_approval_pending() -> bool:
    return Setting.objects.filter(key=PENDING_KEY).exists()


@dataclass(frozen=True)
class AuditFigures:
    drawn: int
    reviewed: int
    pairs: int  # model-approved pairs the reviewers saw
    confirmed: int  # of those, kept
    added_tags: int  # tags the reviewers added that the model had not approved
    precision: float | None
    lower_bound: float | None  # one-sided, at the confidence level: what the stop rule compares
    interval: tuple[float, float] | None  # two-sided Clopper-Pearson at the confidence level
    decided: bool  # enough audit to judge: see audit_verdict
    failing: bool  # the stop rule fires on these figures

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval"] = list(self.interval) if self.interval else None
        return data


def audit_verdict(
    *, drawn: int, reviewed: int, pairs: int, confirmed: int, settings: AutoApprovalSettings
) -> tuple[bool, bool]:
    """(decided, failing) for a version's audit.

    It fails at any time when even the upper bound is below the target: the audit shows the version
    misses it. With ``stop_rule="lower_bound"`` (the default) it also fails when the lower bound is below
    the target, judged once the audit is complete enough to clear the target when it is right (the lower
    bound of a small audit is low whatever its outcome: 10 of 10 right gives 0.74 at 95%): at least
    ``audit_min_products`` reviewed (or every drawn product, when fewer were drawn) and at least
    ``min_pairs`` pairs. Note the price: at the minimum audit (149 pairs at 0.98 / 95%) a single wrong
    pair fails it, which a version of true precision 0.993 does 65% of the time; "upper_bound" stops only
    on evidence of a miss.
    """
    if pairs == 0:
        return False, False
    level = settings.confidence
    if precision_upper_bound(confirmed, pairs, level) < settings.target_precision:
        return True, True
    enough = reviewed >= min(settings.audit_min_products, drawn) and pairs >= min_pairs(
        settings.target_precision, level
    )
    if not enough:
        return False, False
    if settings.stop_rule == "upper_bound":
        return True, False
    return True, precision_lower_bound(confirmed, pairs, level) < settings.target_precision


def audit_figures(version_id: int, settings: AutoApprovalSettings) -> AuditFigures:
    agg = AutoApprovalAudit.objects.filter(model_version_id=version_id).aggregate(
        drawn=Count("id"),
        reviewed=Count("id", filter=Q(reviewed_at__isnull=False)),
        pairs=Sum("audited_pairs"),
        confirmed=Sum("confirmed_pairs"),
        added=Sum("added_tags"),
    )
    pairs, confirmed = int(agg["pairs"] or 0), int(agg["confirmed"] or 0)
    decided, failing = audit_verdict(
        drawn=agg["drawn"], reviewed=agg["reviewed"], pairs=pairs, confirmed=confirmed, settings=settings
    )
    return AuditFigures(
        drawn=agg["drawn"],
        reviewed=agg["reviewed"],
        pairs=pairs,
        confirmed=confirmed,
        added_tags=int(agg["added"] or 0),
        precision=confirmed / pairs if pairs else None,
        lower_bound=precision_lower_bound(confirmed, pairs, settings.confidence) if pairs else None,
        interval=clopper_pearson(confirmed, pairs, settings.confidence) if pairs else None,
        decided=decided,
        failing=failing,
    )


def no_approval_reason(record: AutoApprovalVersion) -> str | None:
    """Why a version's passes approved nothing, in words (the models page, the dashboard, the REST state):
    how far its pooled evidence came from a cut. None once it approved something, or before its first
    pass, or for a record without the diagnosis (a pass before it existed)."""
    cuts, evidence = record.cuts or {}, record.evidence or {}
    if record.approved_pairs or record.reverted_at is not None or not cuts:
        return None
    pooled = cuts.get("global") or {}
    shortfall = pooled.get("shortfall")
    if pooled.get("approve") is not None or evidence.get("tags_with_own_cut") or not shortfall:
        return None
    version, target = record.model_version.version, cuts.get("target")
    own = len(cuts.get("per_tag") or {})
    on_own = f" {own} tags with evidence of their own were judged apart and none passed." if own else ""
    sources = (
        f"Evidence: {evidence.get('validation_products', 0):,} held-out products, "
        f"{evidence.get('out_of_fold_products', 0):,} labelled products scored out of fold, "
        f"{evidence.get('review_products', 0):,} reviews."
    )
    if shortfall["value"] is None:
        return (
            f"{version} approves nothing yet: its evidence holds {shortfall['pairs']:,} scored pairs, and a "
            f"cut at {target} needs at least {shortfall['needed']:,} pairs above it, all right.{on_own} {sources}"
        )
    n, k = shortfall["n"], shortfall["k"]
    return (
        f"{version} approves nothing: no score cut reaches {target}. The closest, at score "
        f"{shortfall['value']:.3f} and above, stands on {n:,} evidence pairs of which {n - k:,} are wrong "
        f"(precision {k / n:.3f}, lower bound {shortfall['lower']:.3f}).{on_own} {sources}"
    )


def queue_exit_reason(record: AutoApprovalVersion) -> str | None:
    """Why the products a version approved tags on stay in the review queue (the exit gate failed), in
    words; None when they may leave or nothing was approved."""
    gate = (record.evidence or {}).get("exit")
    if not record.approved_pairs or not gate or gate.get("passes"):
        return None
    target = (record.cuts or {}).get("target")
    if not gate["n"]:
        return (
            f"Products {record.model_version.version} approved tags on stay in the review queue: no evidence "
            "product would leave by the rule yet, so the share of whole products it gets right is unknown."
        )
    return (
        f"Products {record.model_version.version} approved tags on stay in the review queue: of "
        f"{gate['n']:,} evidence products the rule would let leave, {gate['k']:,} had exactly their tags "
        f"(lower bound {gate['lower']:.3f}, under {target})."
    )


def auto_approval_versions(settings: AutoApprovalSettings | None = None) -> list[dict[str, Any]]:
    """Every version auto-approval worked with, newest first: cuts, approvals, audit."""
    settings = settings or auto_approval_settings()
    records = list(AutoApprovalVersion.objects.select_related("model_version").order_by("-model_version_id"))
    ids = [r.model_version_id for r in records]
    current = dict(
        ProductTag.objects.filter(source=TagSource.MODEL, model_version_id__in=ids)
        .values_list("model_version_id")
        .annotate(n=Count("id"))
    )
    out_of_queue = dict(
        ProductTag.objects.filter(
            source=TagSource.MODEL, model_version_id__in=ids, product__review_status=ReviewStatus.AUTO
        )
        .values_list("model_version_id")
        .annotate(n=Count("product_id", distinct=True))
    )
    rows = []
    for record in records:
        version: ModelVersion = record.model_version
        cuts = record.cuts or {}
        rows.append(
            {
                "id": version.id,
                "version": version.version,
                "is_active": version.is_active,
                "approved_pairs": record.approved_pairs,
                "approved_products": record.approved_products,
                "pairs_unconfirmed": int(current.get(version.id, 0)),
                "products_out_of_queue": int(out_of_queue.get(version.id, 0)),
                "global_cut": (cuts.get("global") or {}).get("approve"),
                "tags_with_own_cut": len(cuts.get("per_tag") or {}),
                "evidence": record.evidence or {},
                "computed_at": record.computed_at,
                "reverted_at": record.reverted_at,
                "no_approval_reason": no_approval_reason(record),
                "queue_exit_reason": queue_exit_reason(record),
                "audit": audit_figures(version.id, settings).as_dict(),
            }
        )
    return rows


def auto_approval_state() -> dict[str, Any]:
    """Settings and state, as ``GET /api/v1/auto-approval/`` and the pages show them."""
    settings = auto_approval_settings()
    stop = auto_approval_stop()
    return {
        **settings.as_dict(),
        "stopped": stop is not None,
        "stop": stop,
        "pending": auto_approval_pending(),
        "products_out_of_queue": Product.objects.filter(review_status=ReviewStatus.AUTO).count(),
        "audits_waiting": AutoApprovalAudit.objects.filter(reviewed_at__isnull=True).count(),
        "versions": auto_approval_versions(settings),
    }
