"""Catalog search: the product list's filters beyond status, approved tag and text (issue 16, point 4).

- **Suggested tag** with a score range: products the model version (the active one unless named) suggests
  tag T for, with ``min_score <= score <= max_score``.
- **Disagreement**: the model selects a tag that is not approved, or a tag is approved that the model does
  not select. ``Suggestion.selected`` is the model's decision after its per-tag thresholds (score >= the
  tag's threshold) and post-processing, so "scores below its threshold" is ``selected = false``; an
  approved tag with no suggestion row at all (outside the model's top-k) disagrees too. With a suggested
  tag, only disagreement on that tag counts.
- **Category path prefix**: ``Product.category_path`` is a JSON list; the first levels of it are indexed
  as expressions (``category_path ->> 0``, ``->> 1``, ``->> 2``: migration 0006_search_indexes) so on
  PostgreSQL a prefix is an equality on the leading columns of one B-tree. SQLite (embedded mode) gets the
  same filter through json_extract and scans: the JSON path is a bound parameter there, which its planner
  does not match against the index's expression (embedded catalogs are small).
- **Model version**: the products whose current suggestions are that version's (``suggested_by``); it is
  also the version the suggested-tag and disagreement filters read.
- **Order**: priority, score of the suggested tag, update time or id, each both ways, with ``id`` as the
  tie-break, paged by keyset (no OFFSET; see ``search_page``).
- **Count**: exact up to ``COUNT_EXACT_LIMIT`` when counting fits ``COUNT_BUDGET_MS``; otherwise, on
  PostgreSQL, the planner's estimate or a block-sample estimate, labelled as such (see ``search_count``).

Names (tags, versions) are resolved here and bad values raise ``SearchParamError`` naming the parameter,
so the REST filter set and the HTML form give the same answer to the same input.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import BooleanField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from annotation.models import ModelVersion, Product, ProductTag, ReviewStatus, Suggestion
from annotation.taxonomy.resolver import tag_resolve

# "exact below 100,000": a count is exact when the filter matches at most this many products ...
COUNT_EXACT_LIMIT = 100_000
# ... and counting it finishes within this many milliseconds (else it is estimated from a sample; 0: no limit).
COUNT_BUDGET_MS = 100
# An exact count the planner prices above this is not tried (it would not fit the budget). Measured on
# 1,000,000 products on a loaded 2-core machine: cost 4,000-12,000 counted in 13-28 ms, 22,000-45,000 in
# 117-400 ms (a 48,000-row tag range, a 20,000-product category, a 56,000-product text match), 1,400,000
# (disagreement over 200,000 reviewed products) in 3 s.
COUNT_COST_MAX = 20_000
# The planner's estimate is the answer when it is this many times above COUNT_EXACT_LIMIT.
TRUST_PLANNER_ABOVE = 2
# Disagreement on one tag reads the tag's index entries (a set difference) when the version selects the tag
# for at most this many products; above, it checks product by product (pages of a dense match stop early).
SET_FORM_MAX_ROWS = 50_000
# Products read by the sampled estimate (a block sample of the product table).
SAMPLE_ROWS = 10_000
# How many levels of category_path the expression index covers (deeper levels filter the index's rows).
CATEGORY_INDEXED_LEVELS = 3
CATEGORY_MAX_LEVELS = 10
CATEGORY_SEPARATOR = ">"
SCORE_FIELD = "search_score"  # the annotation carrying the suggested tag's score


class SearchParamError(ValueError):
    """A search parameter that cannot be used; ``param`` names it (the 400's field)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class SearchOrder:
    """A list order: ``field`` one way, ``id`` as the tie-break (its own direction, so that "-priority"
    reads the review queue's index, priority desc then id asc)."""

    name: str
    field: str
    descending: bool
    id_descending: bool

    def reverse(self) -> SearchOrder:
        return SearchOrder(self.name, self.field, not self.descending, not self.id_descending)

    def order_by(self) -> tuple[Any, ...]:
        key = F(self.field).desc() if self.descending else F(self.field).asc()
        if self.field == "id":
            return (key,)
        return (key, "-id" if self.id_descending else "id")


SEARCH_ORDERS: dict[str, SearchOrder] = {
    order.name: order
    for order in (
        SearchOrder("-id", "id", True, True),
        SearchOrder("id", "id", False, False),
        SearchOrder("-priority", "priority", True, False),
        SearchOrder("priority", "priority", False, True),
        SearchOrder("-updated", "updated_at", True, True),
        SearchOrder("updated", "updated_at", False, False),
        SearchOrder("-score", SCORE_FIELD, True, False),
        SearchOrder("score", SCORE_FIELD, False, True),
    )
}
ORDER_HELP = {
    "-id": "newest first (default)",
    "id": "oldest first",
    "-priority": "review priority, highest first",
    "priority": "review priority, lowest first",
    "-updated": "last update, latest first",
    "updated": "last update, earliest first",
    "-score": "score of suggested_tag, highest first",
    "score": "score of suggested_tag, lowest first",
}


@dataclass(frozen=True, slots=True)
class ProductSearch:
    """Resolved search criteria (ids, not names): build one with ``product_search_resolve``."""

    status: str = ""  # a ReviewStatus value, or "" for every status
    suggested_tag_id: int | None = None
    min_score: float | None = None
    max_score: float | None = None
    version_id: int | None = None  # the version the suggestion filters read
    version_filter: bool = False  # model_version was given: only its currently suggested products
    disagreement: bool = False
    category: tuple[str, ...] = ()
    order: SearchOrder = SEARCH_ORDERS["-id"]

    @property
    def reads_suggestions(self) -> bool:
        return self.suggested_tag_id is not None or self.disagreement


def category_parse(text: str) -> tuple[str, ...]:
    """``"Fashion > Shoes"`` -> ``("Fashion", "Shoes")``; levels compared exactly (case included)."""
    text = text.strip()
    if not text:
        return ()
    levels = tuple(level.strip() for level in text.split(CATEGORY_SEPARATOR))
    if any(not level for level in levels):
        raise SearchParamError("category", f"Empty level in category path {text!r}: write 'A > B > C'.")
    if len(levels) > CATEGORY_MAX_LEVELS:
        raise SearchParamError("category", f"At most {CATEGORY_MAX_LEVELS} category levels.")
    return levels


def _score(param: str, value: float | str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise SearchParamError(param, f"Not a number: {value!r}.") from None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise SearchParamError(param, f"Must be between 0 and 1, got {value!r}.")
    return score


def product_search_resolve(
    *,
    status: str = "",
    suggested_tag: str = "",
    min_score: float | str | None = None,
    max_score: float | str | None = None,
    model_version: str = "",
    disagreement: bool = False,
    category: str = "",
    order: str = "-id",
) -> ProductSearch:
    """Check and resolve the search parameters (tag and version names to ids); SearchParamError names the
    first bad one."""
    if status and status not in ReviewStatus.values:
        raise SearchParamError(
            "status", f"Unknown status {status!r}: one of {', '.join(ReviewStatus.values)}."
        )
    if order not in SEARCH_ORDERS:
        raise SearchParamError("ordering", f"Unknown order {order!r}: one of {', '.join(SEARCH_ORDERS)}.")
    low, high = _score("min_score", min_score), _score("max_score", max_score)
    if low is not None and high is not None and low > high:
        raise SearchParamError("min_score", f"min_score {low} is above max_score {high}.")
    tag_id = None
    if suggested_tag.strip():
        tag = tag_resolve(suggested_tag)  # aliases and merged names resolve; a deactivated tag still reads
        if tag is None:
            raise SearchParamError("suggested_tag", f"Unknown tag {suggested_tag.strip()!r}.")
        tag_id = tag.id
    elif low is not None or high is not None:
        raise SearchParamError(
            "min_score" if low is not None else "max_score", "A score range needs suggested_tag."
        )
    if SEARCH_ORDERS[order].field == SCORE_FIELD and tag_id is None:
        raise SearchParamError("ordering", f"Order {order!r} sorts by the score of suggested_tag: name one.")
    version_id = None
    if model_version.strip():
        version_id = (
            ModelVersion.objects.filter(version=model_version.strip()).values_list("id", flat=True).first()
        )
        if version_id is None:
            raise SearchParamError("model_version", f"Unknown model version {model_version.strip()!r}.")
    elif tag_id is not None or disagreement:
        version_id = ModelVersion.objects.filter(is_active=True).values_list("id", flat=True).first()
        if version_id is None:
            raise SearchParamError(
                "suggested_tag" if tag_id is not None else "disagreement",
                "No model version is active: name one with model_version.",
            )
    return ProductSearch(
        status=status,
        suggested_tag_id=tag_id,
        min_score=low,
        max_score=high,
        version_id=version_id,
        version_filter=bool(model_version.strip()),
        disagreement=disagreement,
        category=category_parse(category),
        order=SEARCH_ORDERS[order],
    )


def category_level(level: int) -> KeyTextTransform:
    """``category_path ->> level`` (PostgreSQL) / ``json_extract(category_path, '$[level]')`` (SQLite): the
    expression migration 0006_search_indexes indexes, written the same way so the planner matches it."""
    return KeyTextTransform(str(level), "category_path")


def products_in_category(queryset: QuerySet[Product], prefix: tuple[str, ...]) -> QuerySet[Product]:
    """Products whose category path starts with ``prefix`` (level by level, exact)."""
    if not prefix:
        return queryset
    # Plain Exact (text = text), not the JSON key lookup's exact, which on SQLite compares with the value
    # read as JSON (json_extract('Fashion', '$'): malformed).
    return queryset.filter(*(Exact(category_level(i), Value(level)) for i, level in enumerate(prefix)))


def _disagreement(version_id: int, tag_id: int | None) -> Q:
    """Model-selected but not approved, or approved but not model-selected (on ``tag_id`` when given)."""
    selected = Suggestion.objects.filter(
        product_id=OuterRef("pk"), model_version_id=version_id, selected=True
    )
    approved = ProductTag.objects.filter(product_id=OuterRef("pk"))
    if tag_id is not None:
        selected_ids = Suggestion.objects.filter(
            tag_id=tag_id, model_version_id=version_id, selected=True
        ).values("product_id")
        approved_ids = ProductTag.objects.filter(tag_id=tag_id).values("product_id")
        if _estimated_rows(selected_ids) <= SET_FORM_MAX_ROWS:
            # A tag on few products: the products in one set and not the other, read from the tag's index
            # entries ((tag, version, score, product) and (tag, product)); exact counts stay cheap.
            either = selected_ids.difference(approved_ids).union(
                approved_ids.difference(selected_ids), all=True
            )
            return Q(id__in=either)
        # A frequent tag: product by product, so a page (in id or any order) stops after its rows.
        model = Q(Exists(selected.filter(tag_id=tag_id)))
        person = Q(Exists(approved.filter(tag_id=tag_id)))
        return (model & ~person) | (~model & person)
    if connection.vendor == "postgresql":
        # The two sets of tag ids, compared whole: per product two short index scans, which the planner
        # cannot turn into hashing every selected suggestion of the version (what it did with the
        # EXISTS/NOT EXISTS form below: 0.7 s on 200,000 products, before reading one product).
        table, suggestions, approvals = (
            Product._meta.db_table,
            Suggestion._meta.db_table,
            ProductTag._meta.db_table,
        )
        sql = (
            f"ARRAY(SELECT s.tag_id FROM {suggestions} s WHERE s.product_id = {table}.id "
            "AND s.model_version_id = %s AND s.selected ORDER BY s.tag_id) IS DISTINCT FROM "
            f"ARRAY(SELECT a.tag_id FROM {approvals} a WHERE a.product_id = {table}.id ORDER BY a.tag_id)"
        )
        return Q(RawSQL(sql, (version_id,), output_field=BooleanField()))
    selected_not_approved = selected.filter(
        ~Exists(ProductTag.objects.filter(product_id=OuterRef("product_id"), tag_id=OuterRef("tag_id")))
    )
    approved_not_selected = approved.filter(
        ~Exists(
            Suggestion.objects.filter(
                product_id=OuterRef("product_id"),
                tag_id=OuterRef("tag_id"),
                model_version_id=version_id,
                selected=True,
            )
        )
    )
    return Q(Exists(selected_not_approved)) | Q(Exists(approved_not_selected))


def products_search(queryset: QuerySet[Product], search: ProductSearch) -> QuerySet[Product]:
    """``queryset`` narrowed by ``search`` (the text and approved-tag filters are the callers' own), ordered
    by its order; with a suggested tag, each product carries that tag's score as ``search_score``."""
    if search.status:
        queryset = queryset.filter(review_status=search.status)
    if search.version_filter:
        queryset = queryset.filter(suggested_by_id=search.version_id)
    if search.suggested_tag_id is not None:
        # One join (product, version, tag is unique: one row per product) that filters and carries the
        # score: the planner can read the (version, tag, score) index in score order for "-score".
        condition = {
            "suggestions__model_version_id": search.version_id,
            "suggestions__tag_id": search.suggested_tag_id,
        }
        if search.min_score is not None:
            condition["suggestions__score__gte"] = search.min_score
        if search.max_score is not None:
            condition["suggestions__score__lte"] = search.max_score
        queryset = queryset.filter(**condition).annotate(**{SCORE_FIELD: F("suggestions__score")})
    if search.disagreement:
        assert search.version_id is not None  # product_search_resolve requires one
        queryset = queryset.filter(_disagreement(search.version_id, search.suggested_tag_id))
    queryset = products_in_category(queryset, search.category)
    return queryset.order_by(*search.order.order_by())


# --- Keyset pages ----------------------------------------------------------------------------------------


class SearchCursorError(ValueError):
    """A cursor this list did not produce (edited, or from another order)."""


def cursor_encode(order: SearchOrder, row: Product, *, backwards: bool = False) -> str:
    """An opaque cursor: the order, the (key, id) of the row it continues from, and the direction."""
    key = getattr(row, order.field)
    if isinstance(key, dt.datetime):
        key = key.isoformat()
    raw = json.dumps([order.name, key, row.pk, "p" if backwards else "n"], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(order: SearchOrder, cursor: str) -> tuple[Any, int, bool]:
    """(key, id, backwards) of a cursor of ``order``; SearchCursorError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, key, pk, direction = json.loads(raw)
        if name != order.name or not isinstance(pk, int) or direction not in ("n", "p"):
            raise ValueError(name)
        if order.field == "updated_at":
            key = dt.datetime.fromisoformat(key)
        elif order.field == "id":
            key = int(key)
        else:
            key = float(key)
        return key, pk, direction == "p"
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SearchCursorError("Invalid cursor: it does not belong to this list and order.") from exc


def keyset_segments(
    queryset: QuerySet[Product], order: SearchOrder, after: tuple[Any, int] | None
) -> list[QuerySet[Product]]:
    """The rows after ``after`` = (key, id) in ``order``, as consecutive ordered range scans.

    Key and id may run opposite ways ("-priority": priority desc, id asc), which no single row-value
    comparison expresses, so the rows after (k, i) are two ranges: key = k with id past i, then key past k.
    Each is an index range (equality + range, or one range), never an OR the planner walks row by row.
    """
    queryset = queryset.order_by(*order.order_by())
    if after is None:
        return [queryset]
    key, pk = after
    past_id = "id__lt" if order.id_descending else "id__gt"
    if order.field == "id":
        return [queryset.filter(**{past_id: pk})]
    past_key = f"{order.field}__lt" if order.descending else f"{order.field}__gt"
    return [queryset.filter(**{order.field: key, past_id: pk}), queryset.filter(**{past_key: key})]


def _read(segments: list[QuerySet[Product]], count: int) -> list[Product]:
    rows: list[Product] = []
    for segment in segments:
        rows += list(segment[: count - len(rows)])
        if len(rows) >= count:
            break
    return rows


@dataclass(slots=True)
class SearchPage:
    rows: list[Product]
    next_cursor: str | None
    previous_cursor: str | None


def search_page(
    queryset: QuerySet[Product], order: SearchOrder, *, cursor: str = "", page_size: int
) -> SearchPage:
    """One keyset page of ``queryset`` in ``order`` (no OFFSET: any page costs what the first costs).

    A "next" cursor continues after a page's last row; a "previous" cursor reads the rows before a page's
    first row in the reverse order and turns them back.
    """
    if not cursor:
        rows = _read(keyset_segments(queryset, order, None), page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        return SearchPage(rows, cursor_encode(order, rows[-1]) if more else None, None)
    key, pk, backwards = cursor_decode(order, cursor)
    if not backwards:
        rows = _read(keyset_segments(queryset, order, (key, pk)), page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        previous = cursor_encode(order, rows[0], backwards=True) if rows else None
        return SearchPage(rows, cursor_encode(order, rows[-1]) if more else None, previous)
    rows = _read(keyset_segments(queryset, order.reverse(), (key, pk)), page_size + 1)
    more = len(rows) > page_size
    rows = rows[:page_size][::-1]
    next_cursor = cursor_encode(order, rows[-1]) if rows else None
    return SearchPage(rows, next_cursor, cursor_encode(order, rows[0], backwards=True) if more else None)


# --- Counts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchCount:
    value: int
    is_estimate: bool  # True: an estimate of a count above COUNT_EXACT_LIMIT


def _estimated_rows(queryset: QuerySet) -> int:
    """The planner's row estimate on PostgreSQL; 0 elsewhere (SQLite catalogs are small)."""
    return _planner_rows(queryset) if connection.vendor == "postgresql" else 0


def _planner_rows(queryset: QuerySet) -> int:
    """PostgreSQL's estimate of the rows ``queryset`` returns (EXPLAIN: planning only, no rows read)."""
    sql, params = queryset.query.sql_with_params()
    return int(_plan(sql, params)["Plan Rows"])


def _plan(sql: str, params: Any) -> dict:
    """The top node of PostgreSQL's plan for ``sql`` (rows, total cost); nothing is executed."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return plan[0]["Plan"]


def _sampled_rows(narrow: QuerySet[Product], budget_ms: int) -> int | None:
    """An estimate of the rows of ``narrow`` from a block sample of the product table (``TABLESAMPLE
    SYSTEM``, about ``SAMPLE_ROWS`` products, the same blocks every time): the matches in the sample divided
    by the sampled share. None when even that does not finish within ``budget_ms``."""
    table = Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        total = max(1.0, float(cursor.fetchone()[0]))
    percent = min(100.0, max(0.05, 100.0 * SAMPLE_ROWS / total))
    sql, params = narrow.query.sql_with_params()
    outer = f' FROM "{table}"'
    if outer not in sql:
        return None
    sampled = sql.replace(outer, f"{outer} TABLESAMPLE SYSTEM ({percent:.4f}) REPEATABLE (16)", 1)
    counted = _count_within(f"SELECT count(*) FROM ({sampled}) sample", params, budget_ms)
    return None if counted is None else round(counted * 100.0 / percent)


def _count_within(sql: str, params: Any, budget_ms: int) -> int | None:
    """Run a count under a statement timeout of ``budget_ms`` (0: none); None when it ran out."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # JIT compiling a big count costs ~40 ms before it reads a row: not worth it here.
            cursor.execute("SET LOCAL jit = off")
            if budget_ms > 0:
                cursor.execute(f"SET LOCAL statement_timeout = {int(budget_ms)}")
            cursor.execute(sql, params)
            counted = int(cursor.fetchone()[0])
            # SET LOCAL outlives a released savepoint: inside a caller's transaction, put both back.
            cursor.execute("SET LOCAL jit TO DEFAULT")
            cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
            return counted
    except OperationalError as exc:  # QueryCanceled: the budget ran out (the savepoint rolled it back)
        if getattr(exc.__cause__, "sqlstate", None) != "57014":
            raise
        return None


def search_count(
    queryset: QuerySet[Product], *, limit: int | None = None, budget_ms: int | None = None
) -> SearchCount:
    """How many products ``queryset`` holds: exact up to ``limit`` (``COUNT_EXACT_LIMIT``), else an
    estimate, labelled as such.

    PostgreSQL, in order:

    1. The planner's estimate (EXPLAIN: planning only). Far above ``limit`` (x ``TRUST_PLANNER_ABOVE``), it is
       the answer: counting that many rows of a join would take seconds. The margin keeps a planner that
       guesses high from hiding a count that is in fact below ``limit``.
    2. Otherwise the rows are counted, at most ``limit`` + 1 of them (``LIMIT`` inside the count), within
       ``budget_ms`` (``COUNT_BUDGET_MS``): a count that reaches the bound is above ``limit`` (answered with the
       larger of the planner's estimate and the bound, as an estimate); one below it is exact. A count the
       planner prices above ``COUNT_COST_MAX`` is not started.
    3. A count that runs out of time (a filter that must examine most of the catalog product by product,
       such as disagreement over every product) is estimated from a fixed block sample of the product table
       (``_sampled_rows``), else taken from the planner; both labelled as estimates.

    Other databases (SQLite, embedded mode) count exactly.
    """
    limit = COUNT_EXACT_LIMIT if limit is None else limit
    budget_ms = COUNT_BUDGET_MS if budget_ms is None else budget_ms
    narrow = queryset.order_by().values("pk")
    if connection.vendor != "postgresql":
        return SearchCount(narrow.count(), False)
    estimate = _planner_rows(narrow)
    if estimate > limit * TRUST_PLANNER_ABOVE:
        return SearchCount(estimate, True)
    sql, params = narrow[: limit + 1].query.sql_with_params()
    bounded = f"SELECT count(*) FROM ({sql}) bounded"
    counted = None
    # A count the planner prices far above what fits the budget is not started (the timeout would only
    # waste the budget): seconds of product-by-product checks, such as disagreement over 200,000 products.
    if budget_ms <= 0 or _plan(bounded, params)["Total Cost"] <= COUNT_COST_MAX:
        counted = _count_within(bounded, params, budget_ms)
    if counted is not None:
        if counted > limit:
            return SearchCount(max(estimate, counted), True)
        return SearchCount(counted, False)
    sampled = _sampled_rows(narrow, budget_ms)
    return SearchCount(max(sampled if sampled is not None else estimate, 0), True)
