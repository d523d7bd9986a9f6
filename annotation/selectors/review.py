"""Reads for the review workflow: the queue, the review card, operator counts (product list: catalog).

Every query here reads through an index declared in annotation.models, so its cost does not grow with
the catalog: the queue and the claim go through ``product_queue_idx`` (unreviewed, priority desc, id),
and nothing counts the whole product table (the queue
size is exact up to ``QUEUE_EXACT_COUNT_LIMIT`` and a planner estimate above it, and the page says so).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from annotation.models import (
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
)
from annotation.selectors.precheck import prechecked_keys

# Up to this many unreviewed products the queue size is an exact (bounded) count; above it, the
# PostgreSQL planner's row estimate (COUNT(*) over a million-row queue costs ~100 ms per page view).
QUEUE_EXACT_COUNT_LIMIT = 10_000
QUEUE_SIZE_CACHE_KEY = "review:queue-size:v1"
QUEUE_SIZE_CACHE_SECONDS = 15

# The card shows the chips worth a look: every selected suggestion and approved tag, plus the strongest
# unselected suggestions scoring at least CARD_MIN_SCORE, at most CARD_MAX_UNSELECTED of them; the rest
# sit behind "more" (and count as rejected only when the operator opened it).
CARD_MIN_SCORE = 0.05
CARD_MAX_UNSELECTED = 10

# Keys that toggle the shown chips, in order: 1-9, 0, then letters the page does not use for an action
# (a accept above threshold, s skip, u undo, n no tag applies). review.js uses the same sequence.
CHIP_KEYS = "1234567890qwertyiopdfghjklzxcvbm"


def skip_hide_seconds() -> int:
    """How long a product an operator skipped stays out of *that operator's* queue (others still get it)."""
    return int(getattr(settings, "REVIEW_SKIP_HIDE_SECONDS", 3600))


def claim_ttl() -> dt.timedelta:
    return dt.timedelta(seconds=int(settings.REVIEW_CLAIM_TTL_SECONDS))


# --- The queue -------------------------------------------------------------------------------------------


def review_queue(*, now: dt.datetime) -> QuerySet[Product]:
    """Claimable products in queue order: unreviewed, not under a live claim, priority desc then id.

    The filter on ``review_status`` matches the partial index ``product_queue_idx`` exactly, so the claim
    reads the index from its head and skips the handful of rows other operators hold.
    """
    return (
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
        .filter(Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lt=now))
        .order_by("-priority", "id")
    )


def recently_skipped_ids(*, user, now: dt.datetime) -> QuerySet:
    """Products this operator skipped within the skip window (a subquery, evaluated in the database)."""
    since = now - dt.timedelta(seconds=skip_hide_seconds())
    return ReviewEvent.objects.filter(user=user, action=ReviewAction.SKIP, created_at__gte=since).values(
        "product_id"
    )


def claim_held_by(*, user, now: dt.datetime | None = None) -> Product | None:
    """The product this user holds a live claim on, if any (one claim per user)."""
    now = now or timezone.now()
    return (
        Product.objects.filter(claimed_by=user, claim_expires_at__gt=now)
        .select_related("suggested_by")
        .order_by("claim_expires_at", "id")
        .first()
    )


def precheck_selected() -> bool:
    """Whether cards start with the model's selected chips checked (setting REVIEW_PRECHECK_SELECTED)."""
    return bool(getattr(settings, "REVIEW_PRECHECK_SELECTED", True))


def precheck_min_score() -> float:
    """The score a selected suggestion needs to start checked (setting REVIEW_PRECHECK_MIN_SCORE)."""
    return float(getattr(settings, "REVIEW_PRECHECK_MIN_SCORE", 0.4))


def card_prechecked_tag_ids(suggestions: Iterable[Suggestion], *, prechecked: bool) -> set[int]:
    """The tags of a card's suggestions that start checked (``annotation.selectors.precheck``: selected and
    at least ``REVIEW_PRECHECK_MIN_SCORE`` likely, or the best selected one); none with pre-checking off."""
    if not prechecked:
        return set()
    return prechecked_keys(
        ((s.tag_id, s.score, s.selected) for s in suggestions), min_score=precheck_min_score()
    )


def claim_is_live(product: Product, *, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return (
        product.claimed_by_id is not None
        and product.claim_expires_at is not None
        and (product.claim_expires_at > now)
    )


# --- The review card -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chip:
    """One tag on the card: a suggestion (with its score) and/or an already approved tag."""

    tag_id: int
    name: str
    score: float | None  # None: approved but not suggested by the shown model version
    selected: bool  # the model would apply it (after its thresholds)
    approved_source: str | None  # "import", "review", ... when the tag is already approved
    # The chip's initial state: approved tags start accepted; the model's selected suggestions too
    # when pre-checking is on and they score at least REVIEW_PRECHECK_MIN_SCORE, or the best of them when
    # none does (``card_prechecked_tag_ids``); every other suggestion starts open.
    checked: bool
    # On the card at first sight (False: behind "more"). Approved and selected chips are always visible.
    visible: bool = True


@dataclass(slots=True)
class ReviewCard:
    product: Product
    chips: list[Chip]
    model_version: ModelVersion | None
    claim_expires_at: dt.datetime | None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    claim_token: str | None = None  # the card's claim: a submit naming it is accepted once
    prechecked: bool = False  # the model's selected chips start checked

    @property
    def shown_version_id(self) -> int | None:
        return self.model_version.id if self.model_version else None

    @property
    def suggestions(self) -> list[Chip]:
        return [chip for chip in self.chips if chip.score is not None]

    @property
    def visible_chips(self) -> list[Chip]:
        return [chip for chip in self.chips if chip.visible]

    @property
    def more_chips(self) -> list[Chip]:
        return [chip for chip in self.chips if not chip.visible]


def suggestions_shown(*, product: Product, version_id: int | None) -> list[Suggestion]:
    """The suggestions of one model version for a product, best first (the card never mixes versions)."""
    if version_id is None:
        return []
    return list(
        Suggestion.objects.filter(product=product, model_version_id=version_id)
        .select_related("tag")
        .order_by("-score", "tag__name")
    )


def approved_tags_of(product: Product) -> list[ProductTag]:
    return list(ProductTag.objects.filter(product=product).select_related("tag").order_by("tag__name"))


def _attribute_rows(attributes: Any) -> list[tuple[str, str]]:
    if not isinstance(attributes, dict):
        return []
    rows = []
    for key, value in attributes.items():
        if isinstance(value, list | tuple):
            text = ", ".join(str(item) for item in value)
        elif isinstance(value, dict):
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = str(value)
        rows.append((str(key), text))
    return rows


def _chip_visible(suggestion: Suggestion, *, approved: bool, unselected_rank: int) -> bool:
    if approved or suggestion.selected:
        return True
    return suggestion.score >= CARD_MIN_SCORE and unselected_rank < CARD_MAX_UNSELECTED


def bulk_rejected_tag_ids(product: Product) -> set[int]:
    """Tags whose latest bulk decision on this product (annotation.services.bulk), not undone, rejected
    them: the card starts them unchecked even where the model selects them."""
    latest: dict[int, bool] = {}
    for tag_id, accepted in (
        ReviewEvent.objects.filter(product=product, action=ReviewAction.BULK, reverted_by__isnull=True)
        .order_by("created_at", "id")
        .values_list("tag_id", "accepted")
    ):
        latest[tag_id] = bool(accepted)
    return {tag_id for tag_id, accepted in latest.items() if not accepted}


def review_card(*, product: Product, version_id: int | None = None) -> ReviewCard:
    """What the operator sees: product fields, the current suggestions by score, approved tags marked.

    ``version_id`` defaults to ``product.suggested_by`` (the current suggestions); the submit of this
    card records these suggestions as "shown" (those behind "more" as not visible). With pre-checking on
    (``REVIEW_PRECHECK_SELECTED``) the model's selected chips start checked when they score at least
    ``REVIEW_PRECHECK_MIN_SCORE`` (or the best selected chip when none does; ``card_prechecked_tag_ids``):
    a right card takes one key, except a tag a bulk decision rejected for this product (it starts
    unchecked).
    """
    version_id = product.suggested_by_id if version_id is None else version_id
    suggestions = suggestions_shown(product=product, version_id=version_id)
    approved = {row.tag_id: row for row in approved_tags_of(product)}
    prechecked = precheck_selected()
    starts_checked = card_prechecked_tag_ids(suggestions, prechecked=prechecked)
    rejected_in_bulk = bulk_rejected_tag_ids(product) if product.pk else set()
    chips = []
    unselected_rank = 0
    for s in suggestions:  # best first
        is_approved = s.tag_id in approved
        visible = _chip_visible(s, approved=is_approved, unselected_rank=unselected_rank)
        if not (is_approved or s.selected) and s.score >= CARD_MIN_SCORE:
            unselected_rank += 1
        chips.append(
            Chip(
                tag_id=s.tag_id,
                name=s.tag.name,
                score=s.score,
                selected=s.selected,
                approved_source=approved[s.tag_id].source if is_approved else None,
                checked=is_approved or (s.tag_id in starts_checked and s.tag_id not in rejected_in_bulk),
                visible=visible,
            )
        )
    suggested_ids = {s.tag_id for s in suggestions}
    chips += [
        Chip(
            tag_id=row.tag_id,
            name=row.tag.name,
            score=None,
            selected=False,
            approved_source=row.source,
            checked=True,
        )
        for row in approved.values()
        if row.tag_id not in suggested_ids
    ]
    version = None
    if version_id is not None:
        version = (
            product.suggested_by
            if product.suggested_by_id == version_id and product.suggested_by is not None
            else ModelVersion.objects.filter(id=version_id).first()
        )
    return ReviewCard(
        product=product,
        chips=chips,
        model_version=version,
        claim_expires_at=product.claim_expires_at,
        attributes=_attribute_rows(product.attributes),
        claim_token=str(product.claim_token) if product.claim_token else None,
        prechecked=prechecked,
    )


@dataclass(frozen=True, slots=True)
class TitleSegment:
    """A run of the title, plain text (the template escapes it), and the chips' tags it mentions."""

    text: str
    tag_ids: tuple[int, ...] = ()


def title_segments(title: str, spans_by_tag: Mapping[int, Sequence[tuple[int, int]]]) -> list[TitleSegment]:
    """The title cut where a mention of a chip's tag starts or ends (offsets in the original title), so
    the card can mark the words naming a tag without ever writing product text as HTML."""
    clipped = (
        (max(0, start), min(len(title), end), tag_id)
        for tag_id, found in spans_by_tag.items()
        for start, end in found
    )
    spans = [(a, b, tag_id) for a, b, tag_id in clipped if a < b]
    cuts = sorted({0, len(title), *(a for a, _, _ in spans), *(b for _, b, _ in spans)})
    segments = []
    for a, b in zip(cuts, cuts[1:]):
        if a >= b:
            continue
        tags = tuple(sorted({tag_id for start, end, tag_id in spans if start <= a and b <= end}))
        if segments and segments[-1].tag_ids == tags:  # no mention boundary here: one run
            segments[-1] = TitleSegment(segments[-1].text + title[a:b], tags)
        else:
            segments.append(TitleSegment(title[a:b], tags))
    return segments


# --- Operator counts and queue size ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueSize:
    value: int
    exact: bool


@dataclass(frozen=True, slots=True)
class ReviewStats:
    today: int
    total: int
    queue: QueueSize


def queue_size() -> QueueSize:
    """Unreviewed products: exact up to QUEUE_EXACT_COUNT_LIMIT, else the planner's estimate."""
    unreviewed = Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
    bounded = unreviewed.values("id")[: QUEUE_EXACT_COUNT_LIMIT + 1].count()
    if bounded <= QUEUE_EXACT_COUNT_LIMIT:
        return QueueSize(bounded, exact=True)
    if connection.vendor != "postgresql":
        return QueueSize(bounded, exact=False)  # shown as "more than" the limit
    sql, params = unreviewed.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return QueueSize(max(estimate, bounded), exact=False)


def _submits_kept(user) -> QuerySet[ReviewEvent]:
    """The user's submits that were not undone."""
    return ReviewEvent.objects.filter(user=user, action=ReviewAction.SUBMIT, reverted_by__isnull=True)


def queue_size_cached() -> QueueSize:
    """queue_size() for every card: exact counts live, the planner's estimate shared for QUEUE_SIZE_CACHE_SECONDS.

    An exact count (at most QUEUE_EXACT_COUNT_LIMIT + 1 index entries, via product_status_id_idx) is cheap
    and must move with each review, so it is never cached; above the limit the count is an estimate that
    a review does not visibly move, and only that is shared.
    """
    cached = cache.get(QUEUE_SIZE_CACHE_KEY)
    if cached is not None:
        return QueueSize(*cached)
    size = queue_size()
    if not size.exact:
        cache.set(QUEUE_SIZE_CACHE_KEY, (size.value, size.exact), QUEUE_SIZE_CACHE_SECONDS)
    return size


def review_stats(*, user, now: dt.datetime | None = None) -> ReviewStats:
    """The operator's own counts (today in the site's time zone, and all time) and the queue size."""
    now = now or timezone.now()
    start_of_day = timezone.make_aware(dt.datetime.combine(timezone.localdate(now), dt.time.min))
    counts = _submits_kept(user).aggregate(
        total=Count("id"), today=Count("id", filter=Q(created_at__gte=start_of_day))
    )
    return ReviewStats(today=counts["today"], total=counts["total"], queue=queue_size_cached())


def last_undoable_submit(*, user, now: dt.datetime | None = None) -> ReviewEvent | None:
    """The user's last submit that can still be undone from the review page (within the claim TTL)."""
    now = now or timezone.now()
    return (
        _submits_kept(user)
        .filter(created_at__gte=now - claim_ttl())
        .select_related("product")
        .order_by("-created_at", "-id")
        .first()
    )


def product_last_submit(*, product: Product) -> ReviewEvent | None:
    """The product's latest submit if it is still in force (not undone): what "undo" on its page reverts."""
    event = (
        ReviewEvent.objects.filter(product=product, action=ReviewAction.SUBMIT)
        .select_related("user")
        .order_by("-created_at", "-id")
        .first()
    )
    if event is None or ReviewEvent.objects.filter(reverts=event).exists():
        return None
    return event


def product_history(*, product: Product, limit: int = 20) -> list[ReviewEvent]:
    return list(
        ReviewEvent.objects.filter(product=product)
        .select_related("user", "model_version")
        .order_by("-created_at", "-id")[:limit]
    )
