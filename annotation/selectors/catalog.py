"""Catalog reads: the product list (filters, keyset pages), tag lookups (autocomplete, names), the
querysets the REST product list and product page serialize, and import jobs.

The product list pages by keyset (never OFFSET), so page 20,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, TypedDict

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from annotation.models import (
    ImportJob,
    Product,
    ProductTag,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    Tag,
    TagAlias,
)
from annotation.selectors.search import (
    SEARCH_ORDERS,
    ProductSearch,
    SearchCount,
    SearchOrder,
    keyset_segments,
    products_search,
    search_count,
)
from annotation.selectors.taxonomy import tag_paths
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name
from annotation.taxonomy.resolver import tag_resolve

PRODUCT_PAGE_SIZE = 50
# A text search examines at most this many products per request (no text index: see product_list).
TEXT_SEARCH_WINDOW = 10_000
TEXT_SEARCH_FIRST_CHUNK = 250
TAG_OPTIONS_LIMIT = 12
REVIEW_HISTORY_LIMIT = 100  # review events on the REST product page


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
    """The canonical tag a name means, deactivated or not (annotation.taxonomy.resolver's rules)."""
    resolved = tag_resolve(name)
    return None if resolved is None else Tag.objects.filter(pk=resolved.id).first()


@dataclass(frozen=True, slots=True)
class TagCheck:
    """Whether a name typed on the review card can be added to the product (the add-tag box's answer)."""

    ok: bool
    name: str  # the canonical name when the tag exists, else the name as it would be created
    new: bool  # a new tag would be created
    message: str


def tag_check(name: str, *, can_create: bool) -> TagCheck:
    """An existing active tag (by name, alias or merged name) can be added; a deactivated one cannot; an
    unknown name becomes a new tag for those who may create tags (``can_create``: admins)."""
    resolved = tag_resolve(name)
    if resolved is not None and resolved.is_active:
        return TagCheck(ok=True, name=resolved.name, new=False, message="")
    if resolved is not None:
        message = f"Tag {resolved.name!r} is deactivated: it cannot be added. Pick another tag."
        return TagCheck(ok=False, name=resolved.name, new=False, message=message)
    try:
        display = clean_tag_display_name(name)
    except TagNameError as exc:
        return TagCheck(ok=False, name=name, new=False, message=str(exc))
    if can_create:
        return TagCheck(ok=True, name=display, new=True, message=f"New tag {display!r} will be created.")
    message = f"Unknown tag {display!r}: only admins can create new tags. Pick one from the list."
    return TagCheck(ok=False, name=display, new=False, message=message)


# --- The product list ------------------------------------------------------------------------------------

LIST_STATUSES = ("unreviewed", "reviewed", "auto", "claimed", "all")
# The HTML list's sorts and the catalog-search order each means (annotation.selectors.search.SEARCH_ORDERS).
LIST_SORT_ORDERS = {
    "priority": "-priority",
    "updated": "-updated",
    "updated_asc": "updated",
    "score": "-score",
    "score_asc": "score",
}
LIST_SORTS = tuple(LIST_SORT_ORDERS)


class CursorError(ValueError):
    """A page cursor that was not produced by this list (edited or from another sort)."""


@dataclass(frozen=True, slots=True)
class ProductListFilter:
    status: str = "unreviewed"
    sort: str = "priority"
    tag: str = ""
    text: str = ""
    # The catalog-search criteria (suggested tag and scores, disagreement, category, model version),
    # resolved by annotation.selectors.search.product_search_resolve; None: none of them.
    search: ProductSearch | None = None

    @property
    def effective_sort(self) -> str:
        # Priority ranks the review queue; it has an index only over unreviewed products (and claimed
        # products are few), so reviewed/all lists sort by update time.
        if self.sort == "priority" and self.status not in ("unreviewed", "claimed"):
            return "updated"
        return self.sort

    @property
    def order(self) -> SearchOrder:
        return SEARCH_ORDERS[LIST_SORT_ORDERS[self.effective_sort]]


@dataclass(slots=True)
class ProductPage:
    rows: list[Product]
    next_cursor: str | None
    unknown_tag: bool = False
    # Set when a text search stopped after examining this many products without filling the page.
    searched: int = 0


def encode_cursor_key(sort: str, key: Any, pk: int) -> str:
    """An opaque page cursor: the sort and the (key, id) of the last row of the page."""
    value = key.isoformat() if isinstance(key, dt.datetime) else key
    raw = json.dumps([sort, value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(sort: str, product: Product) -> str:
    field = SEARCH_ORDERS[LIST_SORT_ORDERS[sort]].field
    return encode_cursor_key(sort, getattr(product, field), product.id)


def _decode_cursor(sort: str, cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, key, pk = json.loads(raw)
        if kind != sort or not isinstance(pk, int):
            raise ValueError(kind)
        if SEARCH_ORDERS[LIST_SORT_ORDERS[sort]].field == "updated_at":
            return dt.datetime.fromisoformat(key), pk
        return float(key), pk
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise CursorError("This page link is out of date; the list restarts from the first page.") from exc


def _filtered(filters: ProductListFilter, now: dt.datetime) -> tuple[QuerySet[Product], bool]:
    """Status, tag and catalog-search filters (the text filter is applied by product_list, over a bounded
    window)."""
    qs = Product.objects.select_related("claimed_by")
    if filters.status == "unreviewed":
        qs = qs.filter(review_status=ReviewStatus.UNREVIEWED)
    elif filters.status == "reviewed":
        qs = qs.filter(review_status=ReviewStatus.REVIEWED)
    elif filters.status == "auto":  # approved by the model, out of the review queue
        qs = qs.filter(review_status=ReviewStatus.AUTO)
    elif filters.status == "claimed":
        # claimed_by IS NOT NULL bounds the scan of product_claim_idx to the few live claims.
        qs = qs.filter(claimed_by__isnull=False, claim_expires_at__gt=now)
    unknown_tag = False
    if filters.tag:
        tag = tag_resolve(filters.tag)  # a deactivated tag filters too: products still carry it
        if tag is None:
            unknown_tag = True
            qs = qs.none()
        else:
            qs = qs.filter(Exists(ProductTag.objects.filter(product=OuterRef("pk"), tag_id=tag.id)))
    if filters.search is not None:
        qs = products_search(qs, filters.search)
    return qs, unknown_tag


def product_list_count(*, filters: ProductListFilter) -> SearchCount:
    """How many products the list's filters match in the whole catalog (text included: title contains,
    or the exact SKU), exact up to 100,000 (annotation.selectors.search.search_count)."""
    qs, _unknown = _filtered(filters, timezone.now())
    text = filters.text.strip()
    if text:
        qs = qs.filter(Q(title__icontains=text) | Q(external_id=text))
    return search_count(qs)


def _ordered_segments(
    qs: QuerySet[Product], order: SearchOrder, after: tuple[Any, int] | None
) -> list[QuerySet[Product]]:
    """The list after the cursor as consecutive, individually ordered index range scans
    (annotation.selectors.search.keyset_segments)."""
    return keyset_segments(qs, order, after)


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
    order = filters.order
    qs, unknown_tag = _filtered(filters, now)
    after = _decode_cursor(sort, cursor) if cursor else None
    segments = _ordered_segments(qs, order, after)
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
    key_field = order.field
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
        for segment in _ordered_segments(qs, order, position):
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
    by_id = qs.order_by().in_bulk(hits)  # the list's query: rows carry the suggested tag's score
    return ProductPage(
        rows=[by_id[pk] for pk in hits if pk in by_id],
        next_cursor=next_cursor,
        unknown_tag=unknown_tag,
        searched=searched,
    )


def approved_tag_names_by_product(product_ids: list[int]) -> dict[int, list[str]]:
    """The approved tags' names of each product (by name), for a page of the HTML product list."""
    names: dict[int, list[str]] = {}
    for product_id, name in (
        ProductTag.objects.filter(product_id__in=product_ids)
        .order_by("tag__name")
        .values_list("product_id", "tag__name")
    ):
        names.setdefault(product_id, []).append(name)
    return names


def product_page_queryset() -> QuerySet[Product]:
    """The HTML product page's product: its suggesting version and claim holder joined."""
    return Product.objects.select_related("suggested_by", "claimed_by")


# --- The REST product list and product page --------------------------------------------------------------


def product_list_queryset() -> QuerySet[Product]:
    """Products as the REST list serializes them: the suggesting version joined, the approved tags
    prefetched by name. The API's FilterSet narrows it with the ``products_*`` filters below."""
    approved = ProductTag.objects.select_related("tag").order_by("tag__normalized_name")
    return Product.objects.select_related("suggested_by").prefetch_related(
        Prefetch("approved_tags", queryset=approved)
    )


def products_with_tag(queryset: QuerySet[Product], tag: Tag) -> QuerySet[Product]:
    """The products that carry ``tag`` as an approved tag."""
    return queryset.filter(Exists(ProductTag.objects.filter(product_id=OuterRef("pk"), tag=tag)))


def products_matching_text(queryset: QuerySet[Product], text: str) -> QuerySet[Product]:
    """Products whose title, brand or external id contains ``text`` (case-insensitive); blank: all."""
    text = text.strip()
    if not text:
        return queryset
    return queryset.filter(
        Q(title__icontains=text) | Q(brand__icontains=text) | Q(external_id__icontains=text)
    )


def products_updated_since(queryset: QuerySet[Product], since: dt.datetime) -> QuerySet[Product]:
    """Products whose content or approved tags changed at or after ``since``."""
    return queryset.filter(Q(updated_at__gte=since) | Q(tags_updated_at__gte=since))


def product_detail_queryset() -> QuerySet[Product]:
    """The REST product page's product: its suggesting version joined (see product_detail)."""
    return Product.objects.select_related("suggested_by")


class ProductDetail(TypedDict):
    """What the REST product page shows besides the product (its serializer's context)."""

    approved: list[ProductTag]
    suggestions: list[Suggestion]
    events: list[ReviewEvent]
    paths: dict[int, list[str]]


def product_detail(*, product: Product, history_limit: int = REVIEW_HISTORY_LIMIT) -> ProductDetail:
    """A product's approved tags (by name, with their paths), the current version's suggestions (best
    first) and its latest review events."""
    approved = list(
        product.approved_tags.select_related("tag", "approved_by", "model_version").order_by(
            "tag__normalized_name"
        )
    )
    suggestions: list[Suggestion] = []
    if product.suggested_by_id is not None:
        suggestions = list(
            Suggestion.objects.filter(product=product, model_version_id=product.suggested_by_id)
            .select_related("tag")
            .order_by("-score", "tag_id")
        )
    events = list(
        ReviewEvent.objects.filter(product=product)
        .select_related("user", "model_version")
        .order_by("-created_at", "-id")[:history_limit]
    )
    return {
        "approved": approved,
        "suggestions": suggestions,
        "events": events,
        "paths": tag_paths(a.tag_id for a in approved),
    }


# --- Imports ---------------------------------------------------------------------------------------------


def import_job_queryset() -> QuerySet[ImportJob]:
    """Import jobs, newest first, with who started them joined (the REST list and detail)."""
    return ImportJob.objects.select_related("created_by")
