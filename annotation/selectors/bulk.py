"""Reads for tag-centric bulk review: a tag's candidates, their count, precision by score band, bulk actions.

A tag T's **candidates** are the products the active model version suggests T for (its stored suggestions;
``TOP_K`` per product), in score order. Every page is one range of ``suggestion_tag_score_idx``
``(tag, model_version, score, product) INCLUDE (selected)``: the equality on (tag, version) and the keyset
bound on (score, product) pick a contiguous run of the index, read forwards (score ascending) or backwards
(descending), joined to its 100 products by primary key. No OFFSET: a page deep in a 200,000-product tag
costs what the first page costs.

**Decided for T** (the ``status`` filter and the precision bands): a product is *reviewed* for T when its
whole card was reviewed (``review_status = reviewed``: the operator saw every tag) or T itself was decided in
bulk (a ``bulk`` ReviewEvent on T that no undo reverted; ``review_product_tag_idx``). A bulk decision does not
mark the product reviewed (see annotation.services.bulk), so the grid needs this per-tag notion: after
"accept all above 0.9", those products leave the grid's *unreviewed* view while staying in the review queue
for their other tags.

**Disagreement on T**: the model selects T but T is not approved, or T is approved but the model does not
select it (its score is under the tag's threshold).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Exists, FloatField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast, Floor, Least
from django.utils import timezone

from annotation.models import (
    BulkAction,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    Tag,
)

CANDIDATE_PAGE_SIZE = 100
CANDIDATE_STATUSES = ("unreviewed", "reviewed", "all")
CANDIDATE_ORDERS = ("-score", "score")
CATEGORY_SEPARATOR = " > "
# Precision bands: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0].
BAND_COUNT = 10


class CandidateFilterError(ValueError):
    """A filter value the grid cannot use; ``field`` names it (the API answers 400 on that field)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class CandidateFilter:
    """What narrows a tag's candidates. Scores are inclusive bounds in [0, 1]."""

    min_score: float | None = None
    max_score: float | None = None
    status: str = "all"
    text: str = ""
    category: tuple[str, ...] = ()
    disagreement: bool = False

    def __post_init__(self) -> None:
        for name in ("min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value <= 1.0):
                raise CandidateFilterError(name, f"{name} must be between 0 and 1, got {value}")
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise CandidateFilterError("min_score", "min_score is above max_score")
        if self.status not in CANDIDATE_STATUSES:
            raise CandidateFilterError(
                "status", f"status must be one of {', '.join(CANDIDATE_STATUSES)}, got {self.status!r}"
            )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["category"] = list(self.category)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CandidateFilter:
        return cls(**{**data, "category": tuple(data.get("category") or ())})


def category_parse(text: str) -> tuple[str, ...]:
    """ "Clothing > Shoes" -> ("Clothing", "Shoes") (a category path prefix, as the product page shows it)."""
    return tuple(part.strip() for part in text.split(CATEGORY_SEPARATOR.strip()) if part.strip())


@dataclass(frozen=True, slots=True)
class CandidateRow:
    product_id: int
    external_id: str
    title: str
    brand: str
    image_url: str
    score: float
    selected: bool  # the model applies T (after its thresholds)
    approved: bool  # T is an approved tag of the product
    decided: bool  # reviewed for T (card reviewed, or T decided in bulk)
    review_status: str
    approved_tags: list[str] = field(default_factory=list)
    claimed_by: str | None = None  # the user holding a live review claim on it

    @property
    def disagrees(self) -> bool:
        return self.selected != self.approved


@dataclass(slots=True)
class CandidatePage:
    tag: Tag
    version: ModelVersion | None
    rows: list[CandidateRow]
    next_cursor: str | None
    order: str


def live_bulk_decisions(tag_id: int) -> QuerySet[ReviewEvent]:
    """Bulk decisions on ``tag_id`` that no undo reverted (filter by product for one product's)."""
    return ReviewEvent.objects.filter(tag_id=tag_id, action=ReviewAction.BULK, reverted_by__isnull=True)


def _bulk_decision(tag_id: int) -> Subquery:
    """The id of a live bulk decision on the tag for the row's product, or NULL.

    A scalar subquery (LIMIT 1), not EXISTS, on purpose: PostgreSQL turns a correlated EXISTS into a
    *hashed* subplan that first reads every bulk decision on the tag, which after "accept all above 0.6"
    is 100,000 rows read for each page (690 ms at 1M products). This form is one probe of
    ``review_product_tag_idx`` per candidate the page looks at, whatever the statistics say.
    """
    decisions = live_bulk_decisions(tag_id).filter(product_id=OuterRef("product_id")).order_by()
    return Subquery(decisions.values("id")[:1])


@contextmanager
def _no_jit() -> Iterator[None]:
    """Run the enclosed queries without PostgreSQL's JIT compiler.

    The planner cannot know how many candidates a filtered page must look at before 100 pass, so it prices
    the page as if it read thousands and, above ``jit_above_cost``, compiles the query first: 390 ms of
    compiling for a query that then runs in 3 ms. JIT pays off for long analytic scans, not for these.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        yield


DECIDED = Q(product__review_status=ReviewStatus.REVIEWED) | Q(bulk_decision__isnull=False)


def _approved(tag_id: int) -> Exists:
    return Exists(ProductTag.objects.filter(product_id=OuterRef("product_id"), tag_id=tag_id))


def candidate_queryset(*, tag: Tag, version_id: int, filters: CandidateFilter) -> QuerySet[Suggestion]:
    """The version's suggestions of ``tag`` that pass ``filters`` (unordered; annotated ``approved``)."""
    qs = Suggestion.objects.filter(tag_id=tag.pk, model_version_id=version_id).annotate(
        bulk_decision=_bulk_decision(tag.pk)
    )
    if filters.min_score is not None:
        qs = qs.filter(score__gte=filters.min_score)
    if filters.max_score is not None:
        qs = qs.filter(score__lte=filters.max_score)
    if filters.status == "reviewed":
        qs = qs.filter(DECIDED)
    elif filters.status == "unreviewed":
        qs = qs.filter(product__review_status=ReviewStatus.UNREVIEWED, bulk_decision__isnull=True)
    text = filters.text.strip()
    if text:
        qs = qs.filter(
            Q(product__title__icontains=text)
            | Q(product__brand__icontains=text)
            | Q(product__external_id=text)
        )
    for depth, part in enumerate(filters.category):
        qs = qs.filter(**{f"product__category_path__{depth}": part})
    qs = qs.annotate(approved=_approved(tag.pk))
    if filters.disagreement:
        qs = qs.filter(Q(selected=True, approved=False) | Q(selected=False, approved=True))
    return qs


def _ordered(qs: QuerySet[Suggestion], order: str, after: tuple[float, int] | None) -> QuerySet[Suggestion]:
    """Keyset order on (score, product). The bound is written as ``score <= s AND (score < s OR product <
    p)``: the first half is an index range condition, so the scan starts at the cursor instead of walking
    the rows before it."""
    if order == "-score":
        qs = qs.order_by("-score", "-product_id")
        if after is not None:
            score, pk = after
            qs = qs.filter(score__lte=score).filter(Q(score__lt=score) | Q(product_id__lt=pk))
    else:
        qs = qs.order_by("score", "product_id")
        if after is not None:
            score, pk = after
            qs = qs.filter(score__gte=score).filter(Q(score__gt=score) | Q(product_id__gt=pk))
    return qs


def encode_candidate_cursor(order: str, score: float, product_id: int) -> str:
    raw = json.dumps([order, score, product_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_candidate_cursor(order: str, cursor: str) -> tuple[float, int]:
    """The (score, product id) a cursor continues after; CandidateFilterError("cursor") when it is not one
    this order produced."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, score, pk = json.loads(raw)
        if kind != order or not isinstance(pk, int) or isinstance(pk, bool) or not 0 < pk < 2**63:
            raise ValueError(kind)
        score = float(score)
        if not 0.0 <= score <= 1.0:  # also refuses NaN
            raise ValueError(score)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CandidateFilterError(
            "cursor", "Invalid cursor (it belongs to another order or was edited)."
        ) from exc
    return score, pk


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).only("id", "version").first()


def tag_candidates(
    *,
    tag: Tag,
    filters: CandidateFilter,
    order: str = "-score",
    cursor: str = "",
    page_size: int = CANDIDATE_PAGE_SIZE,
    version: ModelVersion | None = None,
) -> CandidatePage:
    """One keyset page of ``tag``'s candidates under the active version (empty without one)."""
    if order not in CANDIDATE_ORDERS:
        raise CandidateFilterError("order", f"order must be score or -score, got {order!r}")
    version = version or active_version()
    if version is None:
        return CandidatePage(tag=tag, version=None, rows=[], next_cursor=None, order=order)
    after = decode_candidate_cursor(order, cursor) if cursor else None
    qs = _ordered(candidate_queryset(tag=tag, version_id=version.pk, filters=filters), order, after)
    with _no_jit():
        raw = _page_rows(qs, page_size)
    more = len(raw) > page_size
    raw = raw[:page_size]
    names = _approved_names([r[0] for r in raw])
    now = timezone.now()
    rows = [
        CandidateRow(
            product_id=pid,
            external_id=external_id,
            title=title,
            brand=brand,
            image_url=image_url,
            score=score,
            selected=selected,
            approved=approved,
            decided=bulk_decision is not None or status == ReviewStatus.REVIEWED,
            review_status=status,
            approved_tags=names.get(pid, []),
            claimed_by=holder if holder and expires and expires > now else None,
        )
        for (
            pid,
            score,
            selected,
            approved,
            bulk_decision,
            external_id,
            title,
            brand,
            image_url,
            status,
            holder,
            expires,
        ) in raw
    ]
    next_cursor = encode_candidate_cursor(order, rows[-1].score, rows[-1].product_id) if more else None
    return CandidatePage(tag=tag, version=version, rows=rows, next_cursor=next_cursor, order=order)


def _page_rows(qs: QuerySet[Suggestion], page_size: int) -> list[tuple]:
    return list(
        qs.values_list(
            "product_id",
            "score",
            "selected",
            "approved",
            "bulk_decision",
            "product__external_id",
            "product__title",
            "product__brand",
            "product__image_url",
            "product__review_status",
            "product__claimed_by__username",
            "product__claim_expires_at",
        )[: page_size + 1]
    )


def _approved_names(product_ids: Sequence[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    if not product_ids:
        return names
    for pid, name in (
        ProductTag.objects.filter(product_id__in=product_ids)
        .order_by("product_id", "tag__normalized_name")
        .values_list("product_id", "tag__name")
    ):
        names.setdefault(pid, []).append(name)
    return names


def candidate_count(
    *, tag: Tag, filters: CandidateFilter, version_id: int | None = None, limit: int | None = None
) -> int:
    """How many candidates pass ``filters`` (exact; counting stops at ``limit`` when given)."""
    if version_id is None:
        version = active_version()
        if version is None:
            return 0
        version_id = version.pk
    qs = candidate_queryset(tag=tag, version_id=version_id, filters=filters)
    with _no_jit():
        if limit is not None:
            return len(qs.values_list("product_id", flat=True)[:limit])
        return qs.count()


def candidate_id_chunks(
    *, tag: Tag, version_id: int, filters: CandidateFilter, chunk: int, after: tuple[float, int] | None = None
) -> Iterator[list[tuple[float, int, bool]]]:
    """Every candidate passing ``filters``, best score first, as (score, product id, selected) chunks read
    by keyset (a bulk decision by filter walks this while it decides: rows it decides may leave the filter,
    the keyset goes on after them)."""
    while True:
        qs = _ordered(candidate_queryset(tag=tag, version_id=version_id, filters=filters), "-score", after)
        with _no_jit():
            rows = list(qs.values_list("score", "product_id", "selected")[:chunk])
        if not rows:
            return
        yield rows
        if len(rows) < chunk:
            return
        after = rows[-1][:2]


# --- Precision by score band ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreBand:
    low: float
    high: float
    candidates: int  # the version's suggestions of the tag in the band
    reviewed: int  # of those, decided for the tag
    accepted: int  # of those, with the tag approved

    @property
    def precision(self) -> float | None:
        return self.accepted / self.reviewed if self.reviewed else None


def tag_precision_bands(*, tag: Tag, version: ModelVersion | None = None) -> list[ScoreBand]:
    """For each score band of ``tag`` under the active version: how many candidates, how many of them were
    reviewed for the tag and how many of those carry it (precision = accepted / reviewed). One grouped scan
    of the tag's suggestions."""
    version = version or active_version()
    if version is None:
        return []
    band = Least(Cast(Floor(Cast("score", FloatField()) * BAND_COUNT), FloatField()), float(BAND_COUNT - 1))
    decided = DECIDED
    rows = (
        Suggestion.objects.filter(tag_id=tag.pk, model_version_id=version.pk)
        .annotate(band=band, approved=_approved(tag.pk), bulk_decision=_bulk_decision(tag.pk))
        .values("band")
        .annotate(
            candidates=Count("id"),
            reviewed=Count("id", filter=decided),
            accepted=Count("id", filter=decided & Q(approved=True)),
        )
        .order_by("-band")
    )
    with _no_jit():
        by_band = {int(row["band"]): row for row in rows}
    bands = []
    for index in range(BAND_COUNT - 1, -1, -1):
        row = by_band.get(index, {})
        bands.append(
            ScoreBand(
                low=index / BAND_COUNT,
                high=(index + 1) / BAND_COUNT,
                candidates=row.get("candidates", 0),
                reviewed=row.get("reviewed", 0),
                accepted=row.get("accepted", 0),
            )
        )
    return bands


# The bands of a frequent tag read every one of its candidates (2.5 s for 283,000 on a loaded 2-core
# machine): the grid loads them after the page, and keeps them this long, or until the next bulk action
# on the tag (its id and progress are part of the key). Card reviews show up within this time.
BANDS_CACHE_SECONDS = 60


def tag_precision_bands_cached(*, tag: Tag, version: ModelVersion) -> tuple[list[ScoreBand], dt.datetime]:
    """``tag_precision_bands`` through the cache; also returns when they were computed."""
    latest = BulkAction.objects.filter(tag=tag).order_by("-id").values_list("id", "done", "status").first()
    # The latest action as plain key parts: a tuple's repr puts spaces and quotes into the key, which
    # Django's cache key check warns about.
    action = "-".join(str(part) for part in latest) if latest else "none"
    key = f"bulk:bands:v1:{tag.pk}:{version.pk}:{action}"
    cached = cache.get(key)
    if cached is None:
        bands = tag_precision_bands(tag=tag, version=version)
        cached = ([asdict(band) for band in bands], timezone.now())
        cache.set(key, cached, BANDS_CACHE_SECONDS)
    rows, computed = cached
    return [ScoreBand(**row) for row in rows], computed


# --- Bulk actions ---------------------------------------------------------------------------------------


def bulk_action_queryset() -> QuerySet[BulkAction]:
    return BulkAction.objects.select_related("tag", "created_by", "model_version", "undoes").annotate(
        undone=Exists(BulkAction.objects.filter(undoes_id=OuterRef("pk")))
    )


def bulk_actions_recent(*, tag: Tag, limit: int = 10) -> list[BulkAction]:
    """The tag's latest bulk actions (the grid's undo list)."""
    return list(bulk_action_queryset().filter(tag=tag).order_by("-created_at", "-id")[:limit])


def product_ids_by_external_id(external_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    ids = list(dict.fromkeys(external_ids))
    for start in range(0, len(ids), 5000):
        found.update(
            Product.objects.filter(external_id__in=ids[start : start + 5000]).values_list("external_id", "id")
        )
    return found
