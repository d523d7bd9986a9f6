"""Reads for the review workflow: the queue, the review card, operator counts, the product list.

Every query here reads through an index declared in annotation.models, so its cost does not grow with
the catalog: the queue and the claim go through ``product_queue_idx`` (unreviewed, priority desc, id),
the product list pages by keyset (never OFFSET), and nothing counts the whole product table (the queue
size is exact up to ``QUEUE_EXACT_COUNT_LIMIT`` and a planner estimate above it, and the page says so).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import BooleanField, Count, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from annotation.models import (
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    Tag,
    TagAlias,
)
from annotation.taxonomy import TagNameError, normalize_tag_name

# Up to this many unreviewed products the queue size is an exact (bounded) count; above it, the
# PostgreSQL planner's row estimate (COUNT(*) over a million-row queue costs ~100 ms per page view).
QUEUE_EXACT_COUNT_LIMIT = 10_000
QUEUE_SIZE_CACHE_KEY = "review:queue-size:v1"
QUEUE_SIZE_CACHE_SECONDS = 15
PRODUCT_PAGE_SIZE = 50
# A text search examines at most this many products per request (no text index: see product_list).
TEXT_SEARCH_WINDOW = 10_000
TEXT_SEARCH_FIRST_CHUNK = 250
TAG_OPTIONS_LIMIT = 12


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
    checked: bool  # the chip's initial state: approved tags start accepted, suggestions start open


@dataclass(slots=True)
class ReviewCard:
    product: Product
    chips: list[Chip]
    model_version: ModelVersion | None
    claim_expires_at: dt.datetime | None
    attributes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def shown_version_id(self) -> int | None:
        return self.model_version.id if self.model_version else None

    @property
    def suggestions(self) -> list[Chip]:
        return [chip for chip in self.chips if chip.score is not None]


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


def review_card(*, product: Product, version_id: int | None = None) -> ReviewCard:
    """What the operator sees: product fields, the current suggestions by score, approved tags marked.

    ``version_id`` defaults to ``product.suggested_by`` (the current suggestions); the submit of this
    card records exactly these suggestions as "shown".
    """
    version_id = product.suggested_by_id if version_id is None else version_id
    suggestions = suggestions_shown(product=product, version_id=version_id)
    approved = {row.tag_id: row for row in approved_tags_of(product)}
    chips = [
        Chip(
            tag_id=s.tag_id,
            name=s.tag.name,
            score=s.score,
            selected=s.selected,
            approved_source=approved[s.tag_id].source if s.tag_id in approved else None,
            checked=s.tag_id in approved,
        )
        for s in suggestions
    ]
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
    )


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
    """queue_size(), shared for QUEUE_SIZE_CACHE_SECONDS: every card shows it, and it moves slowly."""
    cached = cache.get(QUEUE_SIZE_CACHE_KEY)
    if cached is None:
        size = queue_size()
        cache.set(QUEUE_SIZE_CACHE_KEY, (size.value, size.exact), QUEUE_SIZE_CACHE_SECONDS)
        return size
    return QueueSize(*cached)


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


# --- Tag autocomplete ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagOption:
    name: str  # the canonical tag name (what gets submitted)
    matched: str  # the name or alias that matched what was typed


def tag_options(*, query: str, limit: int = TAG_OPTIONS_LIMIT) -> list[TagOption]:
    """Active tags whose name or alias starts with (then contains) what was typed, folded like tag names."""
    try:
        key = normalize_tag_name(query)
    except TagNameError:
        return []
    options: dict[int, TagOption] = {}
    tags = Tag.objects.filter(is_active=True, merged_into__isnull=True)
    for lookup in ("startswith", "contains"):
        for tag_id, name in tags.filter(**{f"normalized_name__{lookup}": key}).values_list("id", "name")[
            :limit
        ]:
            options.setdefault(tag_id, TagOption(name=name, matched=name))
        aliases = TagAlias.objects.filter(
            **{f"normalized_name__{lookup}": key}, tag__is_active=True, tag__merged_into__isnull=True
        )
        for tag_id, tag_name, alias in aliases.values_list("tag_id", "tag__name", "name")[:limit]:
            options.setdefault(tag_id, TagOption(name=tag_name, matched=alias))
        if len(options) >= limit:
            break
    return sorted(
        options.values(), key=lambda o: (not o.name.casefold().startswith(query.casefold()), o.name)
    )[:limit]


def tag_lookup(name: str) -> Tag | None:
    """The active canonical tag a name or alias stands for (merged tags resolve to their target)."""
    try:
        key = normalize_tag_name(name)
    except TagNameError:
        return None
    tag = Tag.objects.filter(normalized_name=key).select_related("merged_into").first()
    if tag is None:
        alias = TagAlias.objects.filter(normalized_name=key).select_related("tag__merged_into").first()
        tag = alias.tag if alias else None
    if tag is not None and tag.merged_into is not None:
        tag = tag.merged_into
    return tag if tag is not None and tag.is_active else None


# --- The product list ------------------------------------------------------------------------------------

LIST_STATUSES = ("unreviewed", "reviewed", "claimed", "all")
LIST_SORTS = ("priority", "updated")


class CursorError(ValueError):
    """A page cursor that was not produced by this list (edited or from another sort)."""


@dataclass(frozen=True, slots=True)
class ProductListFilter:
    status: str = "unreviewed"
    sort: str = "priority"
    tag: str = ""
    text: str = ""

    @property
    def effective_sort(self) -> str:
        # Priority ranks the review queue; it has an index only over unreviewed products (and claimed
        # products are few), so reviewed/all lists sort by update time.
        return self.sort if self.status in ("unreviewed", "claimed") else "updated"


@dataclass(slots=True)
class ProductPage:
    rows: list[Product]
    next_cursor: str | None
    unknown_tag: bool = False
    # Set when a text search stopped after examining this many products without filling the page.
    searched: int = 0


def encode_cursor_key(sort: str, key: Any, pk: int) -> str:
    """An opaque page cursor: the sort and the (key, id) of the last row of the page."""
    value = key if sort == "priority" else key.isoformat()
    raw = json.dumps([sort, value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(sort: str, product: Product) -> str:
    return encode_cursor_key(sort, product.priority if sort == "priority" else product.updated_at, product.id)


def _decode_cursor(sort: str, cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, key, pk = json.loads(raw)
        if kind != sort or not isinstance(pk, int):
            raise ValueError(kind)
        if sort == "priority":
            return float(key), pk
        return dt.datetime.fromisoformat(key), pk
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise CursorError("This page link is out of date; the list restarts from the first page.") from exc


def _filtered(filters: ProductListFilter, now: dt.datetime) -> tuple[QuerySet[Product], bool]:
    """Status and tag filters (the text filter is applied by product_list, over a bounded window)."""
    qs = Product.objects.select_related("claimed_by")
    if filters.status == "unreviewed":
        qs = qs.filter(review_status=ReviewStatus.UNREVIEWED)
    elif filters.status == "reviewed":
        qs = qs.filter(review_status=ReviewStatus.REVIEWED)
    elif filters.status == "claimed":
        # claimed_by IS NOT NULL bounds the scan of product_claim_idx to the few live claims.
        qs = qs.filter(claimed_by__isnull=False, claim_expires_at__gt=now)
    unknown_tag = False
    if filters.tag:
        tag = tag_lookup(filters.tag)
        if tag is None:
            unknown_tag = True
            qs = qs.none()
        else:
            qs = qs.filter(Exists(ProductTag.objects.filter(product=OuterRef("pk"), tag=tag)))
    return qs, unknown_tag


def _ordered_segments(
    qs: QuerySet[Product], sort: str, after: tuple[Any, int] | None
) -> list[QuerySet[Product]]:
    """The list after the cursor as consecutive, individually ordered index range scans.

    Sort "priority" is (priority desc, id asc). A keyset over mixed directions cannot be one row-value
    comparison, so the rows after (p, id) are two ranges: priority = p and id > id, then priority < p.
    Sort "updated" is (updated_at desc, id desc): one row-value range of ``product_updated_idx`` (an
    import stamps thousands of rows with the same updated_at, which an OR form would walk row by row).
    """
    if sort == "priority":
        qs = qs.order_by("-priority", "id")
        if after is None:
            return [qs]
        priority, pk = after
        return [qs.filter(priority=priority, id__gt=pk), qs.filter(priority__lt=priority)]
    qs = qs.order_by("-updated_at", "-id")
    if after is None:
        return [qs]
    table = Product._meta.db_table
    return [
        qs.filter(
            RawSQL(f'("{table}"."updated_at", "{table}"."id") < (%s, %s)', after, output_field=BooleanField())
        )
    ]


def product_list(
    *,
    filters: ProductListFilter,
    cursor: str = "",
    page_size: int = PRODUCT_PAGE_SIZE,
    text_window: int = TEXT_SEARCH_WINDOW,
) -> ProductPage:
    """One keyset page of products (no OFFSET: page 20,000 costs what page 1 costs).

    A text filter (title contains, or the exact SKU) has no index to use, so each request examines at
    most ``text_window`` products of the list (in list order, from the cursor): a page then holds the
    matches among them, and when it has fewer than a page of them the cursor continues the search after
    the last product examined (``ProductPage.searched``). An exact SKU is looked up by its unique index.
    """
    now = timezone.now()
    sort = filters.effective_sort
    qs, unknown_tag = _filtered(filters, now)
    after = _decode_cursor(sort, cursor) if cursor else None
    segments = _ordered_segments(qs, sort, after)
    text = filters.text.strip()
    if not text:
        rows: list[Product] = []
        for segment in segments:
            rows += list(segment[: page_size + 1 - len(rows)])
            if len(rows) > page_size:
                break
        next_cursor = encode_cursor(sort, rows[page_size - 1]) if len(rows) > page_size else None
        return ProductPage(rows=rows[:page_size], next_cursor=next_cursor, unknown_tag=unknown_tag)

    # Text: read the list from the cursor in growing chunks (id, sort key, title: bounded index range
    # scans), match titles here (casefold: Unicode-aware), stop at a full page or after `text_window`
    # rows, then load the page's matching products.
    needle = text.casefold()
    key_field = "priority" if sort == "priority" else "updated_at"
    hits: list[int] = []
    if after is None:  # the SKU itself first, wherever it sits in the list (unique index lookup)
        hits = list(qs.filter(external_id=text).values_list("id", flat=True)[:1])
    next_cursor = None
    searched = 0
    position = after
    examined = 0
    chunk = TEXT_SEARCH_FIRST_CHUNK
    while len(hits) < page_size:
        size = min(chunk, text_window - examined)
        if size <= 0:  # the window is used up: the next request continues after the last row read
            next_cursor, searched = encode_cursor_key(sort, *position), examined
            break
        rows_read: list[tuple[int, Any, str]] = []
        for segment in _ordered_segments(qs, sort, position):
            rows_read += list(segment.values_list("id", key_field, "title")[: size - len(rows_read)])
            if len(rows_read) >= size:
                break
        for pk, key, title in rows_read:
            if needle in title.casefold() and pk not in hits:
                hits.append(pk)
                if len(hits) == page_size:
                    next_cursor = encode_cursor_key(sort, key, pk)
                    break
        examined += len(rows_read)
        if len(rows_read) < size:
            break  # the end of the list
        position = (rows_read[-1][1], rows_read[-1][0])
        chunk *= 4
    by_id = Product.objects.select_related("claimed_by").in_bulk(hits)
    return ProductPage(
        rows=[by_id[pk] for pk in hits if pk in by_id],
        next_cursor=next_cursor,
        unknown_tag=unknown_tag,
        searched=searched,
    )
