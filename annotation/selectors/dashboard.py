"""Dashboard reads: catalog progress, team throughput, model quality and labels the model doubts.

Every figure is an SQL aggregate (GROUP BY, filtered counts, date truncation) so the page stays fast
with a million products and a hundred thousand reviews; the view caches each section for a short
TTL. The functions return plain dicts and lists — no ORM objects — so the cache can hold them.

Portable across PostgreSQL (production) and SQLite (the embedded ``make run`` mode); PostgreSQL-only
shortcuts (the planner's row estimate instead of COUNT(*)) are taken only there.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, Func, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.fields.json import KT, KeyTransform
from django.db.models.functions import TruncDate
from django.db.models.lookups import Exact
from django.utils import timezone

from annotation.models import (
    ModelState,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    Tag,
)

# Below this many rows an exact COUNT(*) is cheap; above it the planner's estimate serves (a
# dashboard tile does not need the last digit of a million).
EXACT_COUNT_LIMIT = 200_000
REVIEW_WINDOW_DAYS = 30
MAX_VERSIONS = 200

# Suspicious-label rule: the active model scores an approved tag below LOW while it scores a tag the
# product does not have above HIGH.
SUSPICIOUS_LOW = 0.05
SUSPICIOUS_HIGH = 0.9
# The rule runs over the most recently tagged products (newest labels are the ones still worth a
# second look, and the scan stays bounded on a million-product catalog).
SUSPICIOUS_SCAN_PRODUCTS = 10_000
SUSPICIOUS_LIMIT = 50


class JsonArrayLength(Func):
    """Length of a JSON array column (PostgreSQL ``jsonb_array_length``, SQLite ``json_array_length``)."""

    function = "jsonb_array_length"
    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="json_array_length", **extra_context)


class SelectedShown(Func):
    """How many suggestions on the card the model had selected (``shown`` entries with ``selected``)."""

    output_field = IntegerField()
    arity = 1

    def as_sql(self, compiler, connection, **extra_context):
        shown, params = compiler.compile(self.source_expressions[0])
        return (
            f"(CASE WHEN jsonb_typeof({shown}) = 'array' THEN (SELECT count(*) FROM jsonb_array_elements({shown})"
            " AS e WHERE jsonb_typeof(e) = 'object' AND e->'selected' = 'true'::jsonb) ELSE 0 END)",
            (*params, *params),
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        shown, params = compiler.compile(self.source_expressions[0])
        return (
            f"(SELECT count(*) FROM json_each(CASE WHEN json_type({shown}) = 'array' THEN {shown} ELSE '[]' END)"
            " AS e WHERE e.type = 'object' AND json_extract(e.value, '$.selected') = 1)",
            (*params, *params),
        )


class SelectedKept(Func):
    """How many of the model's selected suggestions are among the card's final tags (names match)."""

    output_field = IntegerField()
    arity = 2

    def as_sql(self, compiler, connection, **extra_context):
        shown, shown_params = compiler.compile(self.source_expressions[0])
        final, final_params = compiler.compile(self.source_expressions[1])
        return (
            f"(CASE WHEN jsonb_typeof({shown}) = 'array' AND jsonb_typeof({final}) = 'array' THEN"
            f" (SELECT count(*) FROM jsonb_array_elements({shown}) AS e WHERE jsonb_typeof(e) = 'object'"
            f" AND e->'selected' = 'true'::jsonb AND jsonb_exists({final}, e->>'tag')) ELSE 0 END)",
            (*shown_params, *final_params, *shown_params, *final_params),
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        shown, shown_params = compiler.compile(self.source_expressions[0])
        final, final_params = compiler.compile(self.source_expressions[1])
        return (
            f"(SELECT count(*) FROM json_each(CASE WHEN json_type({shown}) = 'array' THEN {shown} ELSE '[]' END)"
            " AS e WHERE e.type = 'object' AND json_extract(e.value, '$.selected') = 1 AND EXISTS"
            f" (SELECT 1 FROM json_each(CASE WHEN json_type({final}) = 'array' THEN {final} ELSE '[]' END) AS f"
            " WHERE f.value = json_extract(e.value, '$.tag')))",
            (*shown_params, *shown_params, *final_params, *final_params),
        )


def _table_row_estimate(model) -> int | None:
    """PostgreSQL's planner estimate of a table's rows (kept current by autovacuum/ANALYZE)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table]
        )
        row = cursor.fetchone()
    # -1 means "never analysed": no estimate.
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


def catalog_counts(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Products, reviewed, pending (unreviewed) and currently claimed products."""
    now = now or timezone.now()
    estimate = _table_row_estimate(Product)
    if estimate is not None and estimate >= EXACT_COUNT_LIMIT:
        total, estimated = estimate, True
    else:
        total, estimated = Product.objects.count(), False
    # Reviewed products are the smaller part and an index range (product_status_id_idx) counts them.
    reviewed = Product.objects.filter(review_status=ReviewStatus.REVIEWED).count()
    total = max(total, reviewed)
    claimed = Product.objects.filter(claimed_by__isnull=False, claim_expires_at__gt=now).count()
    return {
        "products": total,
        "reviewed": reviewed,
        "pending": total - reviewed,
        "claimed": claimed,
        "estimated": estimated,
        "reviewed_share": reviewed / total if total else 0.0,
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class _ReviewGroup:
    day: dt.date
    user_id: int | None
    model_version_id: int | None
    action: str
    events: int
    accepted: int
    rejected: int
    added: int
    unchanged: int


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


# PostgreSQL: the model's selected suggestions are pulled out of ``shown`` once per event (OFFSET 0 keeps
# the planner from inlining the subquery, which would detoast the ~2 kB ``shown`` value twice), and
# the kept ones are those equal to any final tag (SQL/JSON path comparisons are existential).
_REVIEW_GROUPS_SQL = f"""
SELECT day, user_id, model_version_id, action, count(*), sum(n_selected), sum(n_kept), sum(n_added),
       count(*) FILTER (WHERE n_selected = n_kept AND n_added = 0)
FROM (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, user_id, model_version_id, action,
           jsonb_array_length(selected) AS n_selected,
           jsonb_array_length(jsonb_path_query_array(selected, '$[*] ? (@ == $f[*])',
                                                     jsonb_build_object('f', final_tags))) AS n_kept,
           CASE WHEN jsonb_typeof(added) = 'array' THEN jsonb_array_length(added) ELSE 0 END AS n_added
    FROM (
        SELECT created_at, user_id, model_version_id, action, final_tags, added,
               jsonb_path_query_array(shown, '$[*] ? (@.selected == true).tag') AS selected
        FROM {ReviewEvent._meta.db_table}
        WHERE created_at >= %(since)s AND created_at < %(until)s AND action IN (%(submit)s, %(undo)s)
        OFFSET 0
    ) events
) per_event
GROUP BY day, user_id, model_version_id, action
"""


def _review_groups_between(first_day: dt.date, last_day: dt.date) -> list[_ReviewGroup]:
    """One scan of the review log over whole days, grouped by day, operator, model version and action."""
    since, until = _day_start(first_day), _day_start(last_day + dt.timedelta(days=1))
    if connection.vendor == "postgresql":
        params = {
            "tz": timezone.get_current_timezone_name(),
            "since": since,
            "until": until,
            "submit": ReviewAction.SUBMIT.value,
            "undo": ReviewAction.UNDO.value,
        }
        with connection.cursor() as cursor:
            cursor.execute(_REVIEW_GROUPS_SQL, params)
            rows = cursor.fetchall()
        return [
            _ReviewGroup(
                day=day,
                user_id=user_id,
                model_version_id=version_id,
                action=action,
                events=events,
                accepted=int(kept or 0),
                rejected=int((selected or 0) - (kept or 0)),
                added=int(added or 0),
                unchanged=int(unchanged or 0),
            )
            for day, user_id, version_id, action, events, selected, kept, added, unchanged in rows
        ]
    # Other databases (the embedded SQLite): the same figures through portable JSON expressions.
    selected = SelectedShown("shown")
    kept = SelectedKept("shown", "final_tags")
    queryset = (
        ReviewEvent.objects.filter(
            created_at__gte=since,
            created_at__lt=until,
            action__in=[ReviewAction.SUBMIT, ReviewAction.UNDO],
        )
        .annotate(day=TruncDate("created_at"))
        .values("day", "user_id", "model_version_id", "action")
        .annotate(
            events=Count("id"),
            n_selected=Sum(selected),
            n_kept=Sum(kept),
            n_added=Sum(JsonArrayLength("added")),
            # The model's proposal went through as it was: every selected suggestion kept, nothing added.
            n_unchanged=Count("id", filter=Q(Exact(selected, kept), added=[])),
        )
        .order_by()
    )
    return [
        _ReviewGroup(
            day=row["day"],
            user_id=row["user_id"],
            model_version_id=row["model_version_id"],
            action=row["action"],
            events=row["events"],
            accepted=row["n_kept"] or 0,
            rejected=(row["n_selected"] or 0) - (row["n_kept"] or 0),
            added=row["n_added"] or 0,
            unchanged=row["n_unchanged"] or 0,
        )
        for row in queryset
    ]


CLOSED_DAY_CACHE_SECONDS = 7 * 24 * 3600
_CLOSED_DAY_KEY = "dashboard:v1:review-day:{tz}:{day}"


def _review_groups(first_day: dt.date, today: dt.date, *, use_cache: bool) -> list[_ReviewGroup]:
    """The window's review groups. Days before today are closed — reviews are stamped with the time
    they happen, so a past day's figures no longer change — and are kept in Django's cache for a week:
    a render reads today's events only, whatever the window."""
    if not use_cache:
        return _review_groups_between(first_day, today)
    tz = timezone.get_current_timezone_name()
    closed = [first_day + dt.timedelta(days=i) for i in range((today - first_day).days)]
    keys = {day: _CLOSED_DAY_KEY.format(tz=tz, day=day.isoformat()) for day in closed}
    found = cache.get_many(list(keys.values()))
    groups: list[_ReviewGroup] = [g for day in closed if keys[day] in found for g in found[keys[day]]]
    missing = [day for day in closed if keys[day] not in found]
    if missing:
        fresh = _review_groups_between(missing[0], today)
        by_day: dict[dt.date, list[_ReviewGroup]] = defaultdict(list)
        for group in fresh:
            by_day[group.day].append(group)
        cache.set_many({keys[day]: by_day.get(day, []) for day in missing}, CLOSED_DAY_CACHE_SECONDS)
        wanted = set(missing) | {today}
        groups.extend(g for g in fresh if g.day in wanted)
    else:
        groups.extend(_review_groups_between(today, today))
    return groups


def review_activity(
    *, days: int = REVIEW_WINDOW_DAYS, now: dt.datetime | None = None, use_cache: bool = True
) -> dict[str, Any]:
    """Reviews per day, per-operator throughput and acceptance, and per-version acceptance.

    Acceptance of suggestions = the share of the model's *selected* suggestions (``shown`` entries with
    ``selected``) that the operator kept in the final tags; a card accepted *unchanged* is one where
    every selected suggestion was kept and no tag was added (hierarchy-implied ancestors do not count).
    The audit's ``rejected`` list is not used: it also holds the unselected low scores the card listed.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    first_day = today - dt.timedelta(days=days - 1)
    groups = _review_groups(first_day, today, use_cache=use_cache)

    per_day: dict[dt.date, dict[str, int]] = {
        first_day + dt.timedelta(days=i): {"submits": 0, "undos": 0} for i in range(days)
    }
    per_user: dict[int | None, dict[str, int]] = defaultdict(
        lambda: {"reviews": 0, "undos": 0, "accepted": 0, "rejected": 0, "added": 0, "unchanged": 0}
    )
    per_version: dict[int | None, dict[str, int]] = defaultdict(
        lambda: {"reviews": 0, "accepted": 0, "rejected": 0, "added": 0, "unchanged": 0}
    )
    for group in groups:
        day = per_day.get(group.day)
        user = per_user[group.user_id]
        if group.action == ReviewAction.UNDO:
            user["undos"] += group.events
            if day is not None:
                day["undos"] += group.events
            continue
        if day is not None:
            day["submits"] += group.events
        version = per_version[group.model_version_id]
        for bucket in (user, version):
            bucket["accepted"] += group.accepted
            bucket["rejected"] += group.rejected
            bucket["added"] += group.added
            bucket["unchanged"] += group.unchanged
        user["reviews"] += group.events
        version["reviews"] += group.events

    names = dict(
        get_user_model()
        .objects.filter(id__in=[u for u in per_user if u is not None])
        .values_list("id", "username")
    )
    operators = sorted(
        (
            {
                "user_id": user_id,
                "username": names.get(user_id, "(deleted user)") if user_id is not None else "(system)",
                "reviews": counts["reviews"],
                "undos": counts["undos"],
                "per_day": counts["reviews"] / days,
                "acceptance": _ratio(counts["accepted"], counts["accepted"] + counts["rejected"]),
                "unchanged_share": _ratio(counts["unchanged"], counts["reviews"]),
                "added": counts["added"],
            }
            for user_id, counts in per_user.items()
        ),
        key=lambda row: (-row["reviews"], row["username"]),
    )
    version_names = dict(
        ModelVersion.objects.filter(id__in=[v for v in per_version if v is not None]).values_list(
            "id", "version"
        )
    )
    created = dict(
        ModelVersion.objects.filter(id__in=[v for v in per_version if v is not None]).values_list(
            "id", "created_at"
        )
    )
    versions = sorted(
        (
            {
                "model_version_id": version_id,
                "version": version_names.get(version_id, "(no model)")
                if version_id is not None
                else "(no model)",
                "reviews": counts["reviews"],
                "unchanged_share": _ratio(counts["unchanged"], counts["reviews"]),
                "acceptance": _ratio(counts["accepted"], counts["accepted"] + counts["rejected"]),
            }
            for version_id, counts in per_version.items()
            if counts["reviews"]
        ),
        key=lambda row: (
            created.get(row["model_version_id"]) or dt.datetime.min.replace(tzinfo=dt.UTC),
            row["version"],
        ),
    )
    return {
        "days": days,
        "per_day": [{"day": day, **counts} for day, counts in sorted(per_day.items())],
        "total_reviews": sum(counts["submits"] for counts in per_day.values()),
        "operators": operators,
        "versions": versions,
    }


def _metric(metrics: Any, key: str) -> float | None:
    value = metrics.get(key) if isinstance(metrics, dict) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def model_versions_timeline(*, limit: int = MAX_VERSIONS) -> list[dict[str, Any]]:
    """Trained (ready) versions, oldest first, with their validation micro-F1, P@1 and training size.

    Only the scalar metrics are read out of the JSON in SQL: a version's per-tag table can hold
    thousands of tags and is loaded for the active version alone.
    """
    rows = (
        ModelVersion.objects.filter(state=ModelState.READY)
        .order_by("-created_at", "-id")
        .values("id", "version", "created_at", "train_size", "valid_size", "is_active")
        .annotate(micro_f1=KT("metrics__micro_f1"), p_at_1=KT("metrics__p@1"), p_at_5=KT("metrics__p@5"))[
            :limit
        ]
    )
    out = []
    for row in reversed(list(rows)):
        out.append(
            {
                **row,
                "micro_f1": _metric(row, "micro_f1"),
                "p_at_1": _metric(row, "p_at_1"),
                "p_at_5": _metric(row, "p_at_5"),
            }
        )
    return out


def learning_curve(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Micro-F1 against the number of approved labels each version trained on (one point per size)."""
    best: dict[int, dict[str, Any]] = {}
    for row in timeline:
        if row["micro_f1"] is None or not row["train_size"]:
            continue
        # Several versions on the same data: the latest one stands for that size.
        best[row["train_size"]] = row
    return [
        {"train_size": size, "micro_f1": row["micro_f1"], "version": row["version"]}
        for size, row in sorted(best.items())
    ]


PER_TAG_SORT_KEYS = ("f1", "precision", "recall", "support", "tag")


def per_tag_quality(
    *,
    model_version: ModelVersion | None = None,
    sort: str = "f1",
    descending: bool = False,
    limit: int | None = 200,
) -> dict[str, Any]:
    """Per-tag precision/recall/F1/support from a version's validation metrics, worst first by default.

    Ties on the sort key go to the tag with more support (a bad tag seen often matters more).
    """
    if sort not in PER_TAG_SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(PER_TAG_SORT_KEYS)}, got {sort!r}")
    version = model_version or ModelVersion.objects.filter(is_active=True).only("id", "version").first()
    if version is None:
        return {"version": None, "rows": [], "total": 0, "sort": sort, "descending": descending}
    per_tag = (
        ModelVersion.objects.filter(pk=version.pk)
        .annotate(per_tag=KeyTransform("per_tag", "metrics"))
        .values_list("per_tag", flat=True)
        .first()
    )
    rows = []
    for tag, values in (per_tag or {}).items():
        if not isinstance(values, dict):
            continue
        rows.append(
            {
                "tag": str(tag),
                "precision": _metric(values, "precision") or 0.0,
                "recall": _metric(values, "recall") or 0.0,
                "f1": _metric(values, "f1") or 0.0,
                "support": int(_metric(values, "support") or 0),
            }
        )
    if sort == "tag":
        rows.sort(key=lambda row: row["tag"].casefold(), reverse=descending)
    else:
        sign = -1 if descending else 1
        rows.sort(key=lambda row: (sign * row[sort], -row["support"], row["tag"]))
    return {
        "version": version.version,
        "rows": rows[:limit] if limit else rows,
        "total": len(rows),
        "sort": sort,
        "descending": descending,
    }


def suspicious_labels(
    *,
    low: float = SUSPICIOUS_LOW,
    high: float = SUSPICIOUS_HIGH,
    scan_products: int = SUSPICIOUS_SCAN_PRODUCTS,
    limit: int = SUSPICIOUS_LIMIT,
) -> dict[str, Any]:
    """Approved tags the active model strongly disagrees with, for a second look.

    A product is listed when the active model gives one of its approved tags a score below ``low``
    while giving a tag the product lacks a score above ``high`` (a confidence rule over the stored
    Suggestion rows, in the spirit of cleanlab's self-confidence label-quality score). An approved tag
    without a stored suggestion scored below every stored one, so the product's lowest stored score
    bounds it. Only the ``scan_products`` most recently tagged products are examined: the scan starts
    from their approved tags (a few per product), not from the model's many suggestions.
    """
    version = ModelVersion.objects.filter(is_active=True).only("id", "version").first()
    if version is None:
        return {"version": None, "rows": [], "scanned": 0, "low": low, "high": high}
    recent = (
        Product.objects.filter(tags_updated_at__isnull=False)
        .order_by("-tags_updated_at", "-id")
        .values("id")[:scan_products]
    )
    # 1. Approved tags of those products that the model does not score at ``low`` or above — scored
    #    lower, or not stored at all (one anti-join probe per approved tag on the suggestion's unique
    #    index; the products' few approved tags drive the scan, not the model's many suggestions).
    confident = Suggestion.objects.filter(
        model_version=version, product_id=OuterRef("product_id"), tag_id=OuterRef("tag_id"), score__gte=low
    )
    weak = list(
        ProductTag.objects.filter(product_id__in=Subquery(recent))
        .filter(~Exists(confident))
        .values_list("product_id", "tag_id", "source")
    )
    candidates = {product_id for product_id, _tag, _source in weak}
    if not candidates:
        return {"version": version.version, "rows": [], "scanned": scan_products, "low": low, "high": high}
    # 2. The few candidate products' stored suggestions: what the model expects instead, and the
    #    lowest stored score (the bound for an approved tag it did not store).
    approved: dict[int, set[int]] = defaultdict(set)
    for product_id, tag_id in ProductTag.objects.filter(product_id__in=candidates).values_list(
        "product_id", "tag_id"
    ):
        approved[product_id].add(tag_id)
    lowest: dict[int, float] = {}
    scores: dict[tuple[int, int], float] = {}
    expected: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for product_id, tag_id, score in Suggestion.objects.filter(
        model_version=version, product_id__in=candidates
    ).values_list("product_id", "tag_id", "score"):
        lowest[product_id] = min(score, lowest.get(product_id, 1.0))
        scores[product_id, tag_id] = score
        if score > high and tag_id not in approved[product_id]:
            expected[product_id].append({"tag_id": tag_id, "score": score})
    by_product: dict[int, dict[str, Any]] = {}
    for product_id, tag_id, source in weak:
        score = scores.get((product_id, tag_id))
        if product_id not in expected:
            continue  # nothing the model prefers strongly (or it never scored this product)
        if score is None and lowest.get(product_id, 1.0) >= low:
            continue  # not stored, but the stored ones go no lower than ``low``: not known to be low
        entry = by_product.setdefault(product_id, {"doubted": [], "missing": expected[product_id]})
        entry["doubted"].append(
            {
                "tag_id": tag_id,
                "score": score,
                "bound": lowest[product_id] if score is None else None,
                "source": source,
            }
        )

    tag_ids = {t["tag_id"] for entry in by_product.values() for t in entry["doubted"] + entry["missing"]}
    tag_names = dict(Tag.objects.filter(id__in=tag_ids).values_list("id", "name"))
    products = {
        p["id"]: p
        for p in Product.objects.filter(id__in=list(by_product)).values(
            "id", "external_id", "title", "review_status"
        )
    }
    rows = []
    for product_id, entry in by_product.items():
        for item in entry["doubted"] + entry["missing"]:
            item["tag"] = tag_names.get(item["tag_id"], str(item["tag_id"]))
        entry["doubted"].sort(key=lambda t: t["score"] if t["score"] is not None else t["bound"] or 0.0)
        entry["missing"].sort(key=lambda t: -t["score"])
        weakest = entry["doubted"][0]
        # Quality of the product's labels: the model's confidence in its weakest approved tag, and the
        # strength of its strongest objection. Lower quality, higher objection = more suspicious.
        label_quality = weakest["score"] if weakest["score"] is not None else (weakest["bound"] or 0.0)
        rows.append(
            {
                **products.get(
                    product_id, {"id": product_id, "external_id": "", "title": "", "review_status": ""}
                ),
                "product_id": product_id,
                "doubted": entry["doubted"],
                "missing": entry["missing"],
                "label_quality": label_quality,
                "objection": entry["missing"][0]["score"],
            }
        )
    rows.sort(key=lambda row: (row["label_quality"] - row["objection"], row["product_id"]))
    return {
        "version": version.version,
        "rows": rows[:limit],
        "found": len(rows),
        "scanned": scan_products,
        "low": low,
        "high": high,
    }


def dashboard_model_section() -> dict[str, Any]:
    """Versions over time, the learning curve and the active version's name."""
    timeline = model_versions_timeline()
    active = next((row for row in reversed(timeline) if row["is_active"]), None)
    return {"timeline": timeline, "learning_curve": learning_curve(timeline), "active": active}


__all__ = [
    "EXACT_COUNT_LIMIT",
    "PER_TAG_SORT_KEYS",
    "JsonArrayLength",
    "SelectedKept",
    "SelectedShown",
    "catalog_counts",
    "dashboard_model_section",
    "learning_curve",
    "model_versions_timeline",
    "per_tag_quality",
    "review_activity",
    "suspicious_labels",
]
