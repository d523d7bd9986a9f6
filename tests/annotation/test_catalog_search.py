"""Catalog search (issue 16, point 4) on the real PostgreSQL: every filter of GET /api/v1/products/ and of
the products page, the orders and their keyset pages both ways, the count and its label, the errors, and
the indexes the filters are meant to use. The same selector on SQLite: test_catalog_search_sqlite.py."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from annotation.models import Product, ProductTag, ReviewStatus, TagSource
from annotation.selectors import search as search_module
from annotation.selectors.search import (
    product_search_resolve,
    products_search,
    search_count,
)
from tests.factories import ModelVersionFactory, ProductFactory, TagFactory, suggestions_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def catalog():
    """Six products, two versions (v2 active), tags Navy (alias "dark blue") and Linen.

    v2's suggestions (selected from 0.5):  P1 navy .92 | P2 navy .71 | P3 navy .40, linen .80 |
    P4 navy .55 | P5 linen .30 | P6 none.   Approved: P2 navy (agrees), P3 navy (v2 does not select it),
    P5 linen (not selected), P6 linen (no suggestion at all). v1 (old): P1 linen .99, P6 navy .95.
    """
    navy, linen = TagFactory(name="Navy"), TagFactory(name="Linen")
    navy.aliases.create(name="dark blue", normalized_name="dark blue")
    old = ModelVersionFactory(version="v1")
    new = ModelVersionFactory(version="v2", is_active=True)
    base = timezone.now() - dt.timedelta(days=1)
    rows = [
        ("P1", ["Fashion", "Women", "Dresses", "Maxi"], ReviewStatus.UNREVIEWED, 0.9),
        ("P2", ["Fashion", "Women", "Tops"], ReviewStatus.REVIEWED, 0.0),
        ("P3", ["Fashion", "Men", "Shirts"], ReviewStatus.REVIEWED, 0.0),
        ("P4", ["Home", "Fashion"], ReviewStatus.UNREVIEWED, 0.3),
        ("P5", ["Fashion"], ReviewStatus.REVIEWED, 0.0),
        ("P6", [], ReviewStatus.UNREVIEWED, 0.6),
    ]
    products = {}
    for i, (sku, path, status, priority) in enumerate(rows):
        products[sku] = ProductFactory(
            external_id=sku,
            title=f"Product {sku}",
            category_path=path,
            review_status=status,
            priority=priority,
            updated_at=base + dt.timedelta(minutes=i * 7 % 5),  # P1..P6: +0, +2, +4, +1, +3, +0 minutes
        )
    p = products
    suggestions_create(p["P1"], old, {linen: 0.99})
    suggestions_create(p["P6"], old, {navy: 0.95})
    suggestions_create(p["P1"], new, {navy: 0.92})
    suggestions_create(p["P2"], new, {navy: 0.71})
    suggestions_create(p["P3"], new, {navy: 0.40, linen: 0.80})
    suggestions_create(p["P4"], new, {navy: 0.55})
    suggestions_create(p["P5"], new, {linen: 0.30})
    for sku, tag in (("P2", navy), ("P3", navy), ("P5", linen), ("P6", linen)):
        ProductTag.objects.create(product=p[sku], tag=tag, source=TagSource.REVIEW)
    return {"navy": navy, "linen": linen, "old": old, "new": new, "products": p}


def skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["external_id"] for row in response.json()["results"]]


def sorted_skus(response) -> list[str]:
    return sorted(skus(response))


# --- filters ---------------------------------------------------------------------------------------------


def test_suggested_tag_of_the_active_version_with_a_score_range(operator_api, catalog):
    assert sorted_skus(operator_api.get("/api/v1/products/?suggested_tag=navy")) == ["P1", "P2", "P3", "P4"]
    # An alias resolves; the range is inclusive at both ends.
    url = "/api/v1/products/?suggested_tag=dark blue&min_score=0.55&max_score=0.92"
    assert sorted_skus(operator_api.get(url)) == ["P1", "P2", "P4"]
    assert sorted_skus(operator_api.get("/api/v1/products/?suggested_tag=navy&max_score=0.5")) == ["P3"]
    body = operator_api.get("/api/v1/products/?suggested_tag=Linen&ordering=-score").json()
    assert [(r["external_id"], r["score"]) for r in body["results"]] == [("P3", 0.8), ("P5", 0.3)]
    assert operator_api.get("/api/v1/products/").json()["results"][0]["score"] is None


def test_model_version_names_the_suggestions_read_and_the_products_it_currently_suggests(
    operator_api, catalog
):
    # P6's current suggestions (suggested_by) are v1's, the others' v2's.
    assert skus(operator_api.get("/api/v1/products/?model_version=v1")) == ["P6"]
    assert skus(operator_api.get("/api/v1/products/?model_version=v1&suggested_tag=navy")) == ["P6"]
    assert skus(operator_api.get("/api/v1/products/?model_version=v1&suggested_tag=linen")) == []
    assert sorted_skus(operator_api.get("/api/v1/products/?model_version=v2")) == [
        "P1",
        "P2",
        "P3",
        "P4",
        "P5",
    ]


@pytest.mark.parametrize("per_product", [False, True], ids=["tag-index-form", "per-product-form"])
def test_disagreement(operator_api, catalog, monkeypatch, per_product):
    if per_product:  # the form a frequent tag gets (more products than SET_FORM_MAX_ROWS)
        monkeypatch.setattr(search_module, "SET_FORM_MAX_ROWS", -1)
    # P1, P4: v2 selects navy, not approved. P3: navy approved, scored .40 (below its threshold: not
    # selected), and linen selected, not approved. P5: linen approved, scored .30. P6: linen approved and
    # not suggested at all. P2: navy approved and selected: they agree.
    assert sorted_skus(operator_api.get("/api/v1/products/?disagreement=true")) == [
        "P1",
        "P3",
        "P4",
        "P5",
        "P6",
    ]
    assert sorted_skus(operator_api.get("/api/v1/products/?disagreement=true&suggested_tag=navy")) == [
        "P1",
        "P3",
        "P4",
    ]
    assert sorted_skus(operator_api.get("/api/v1/products/?disagreement=true&suggested_tag=linen")) == [
        "P3",
        "P5",
    ]
    assert sorted_skus(operator_api.get("/api/v1/products/?disagreement=true&status=reviewed")) == [
        "P3",
        "P5",
    ]
    # Read against v1: P1's linen .99 (selected, not approved); P2, P3 have navy approved that v1 never
    # scored; P5 and P6 their linen. Only P4 has nothing approved and nothing selected by v1.
    url = "/api/v1/products/?disagreement=true&model_version=v1"
    Product.objects.update(suggested_by=catalog["old"])
    assert sorted_skus(operator_api.get(url)) == ["P1", "P2", "P3", "P5", "P6"]
    assert sorted_skus(operator_api.get("/api/v1/products/?disagreement=false")) == [
        "P1",
        "P2",
        "P3",
        "P4",
        "P5",
        "P6",
    ]


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("Fashion", ["P1", "P2", "P3", "P5"]),
        ("Fashion > Women", ["P1", "P2"]),
        ("Fashion>Women>Dresses>Maxi", ["P1"]),  # deeper than the three indexed levels
        ("Fashion > Women > Dresses > Midi", []),
        ("Women", []),  # a prefix, not a level anywhere in the path
        ("fashion", []),  # exact, case included
        ("Home", ["P4"]),
    ],
)
def test_category_prefix(operator_api, catalog, category, expected):
    assert sorted_skus(operator_api.get("/api/v1/products/", {"category": category})) == expected


def test_filters_combine_with_the_existing_ones(operator_api, catalog):
    query = {"status": "reviewed", "tag": "Navy", "suggested_tag": "navy", "min_score": "0.5", "q": "P2"}
    assert skus(operator_api.get("/api/v1/products/", query)) == ["P2"]
    assert skus(operator_api.get("/api/v1/products/", {"category": "Fashion", "status": "unreviewed"})) == [
        "P1"
    ]


# --- orders and keyset pages ------------------------------------------------------------------------------


ORDER_EXPECTED = {
    "-id": ["P6", "P5", "P4", "P3", "P2", "P1"],
    "id": ["P1", "P2", "P3", "P4", "P5", "P6"],
    "-priority": ["P1", "P6", "P4", "P2", "P3", "P5"],  # ties: id ascending (the queue's order)
    "priority": ["P5", "P3", "P2", "P4", "P6", "P1"],
    "-updated": ["P3", "P5", "P2", "P4", "P6", "P1"],  # ties (P1, P6): id descending
    "updated": ["P1", "P6", "P4", "P2", "P5", "P3"],
}


@pytest.mark.parametrize("ordering", list(ORDER_EXPECTED))
def test_orders_page_both_ways_without_gaps_or_repeats(operator_api, catalog, ordering):
    first = operator_api.get(f"/api/v1/products/?ordering={ordering}&page_size=4")
    assert skus(first) == ORDER_EXPECTED[ordering][:4]
    pages, url, seen = [], f"/api/v1/products/?ordering={ordering}&page_size=2", []
    while url:
        body = operator_api.get(url).json()
        pages.append([row["external_id"] for row in body["results"]])
        seen += pages[-1]
        url = body["next"]
    assert seen == ORDER_EXPECTED[ordering]
    # Walk back from the last page with the previous links.
    back = operator_api.get(f"/api/v1/products/?ordering={ordering}&page_size=2").json()
    back = operator_api.get(operator_api.get(back["next"]).json()["next"]).json()
    assert back["next"] is None
    walked = [[row["external_id"] for row in back["results"]]]
    while back["previous"]:
        back = operator_api.get(back["previous"]).json()
        walked.insert(0, [row["external_id"] for row in back["results"]])
    assert walked == pages


def test_score_orders_page_through_ties(operator_api, catalog):
    navy = catalog["navy"]
    for i in range(5):  # five products with the same navy score: the tie-break keeps them apart
        suggestions_create(ProductFactory(external_id=f"T{i}"), catalog["new"], {navy: 0.71})
    expected = ["P1", "P2", "T0", "T1", "T2", "T3", "T4", "P4", "P3"]
    for ordering, order in (("-score", expected), ("score", expected[::-1])):
        url, seen = f"/api/v1/products/?suggested_tag=navy&ordering={ordering}&page_size=2", []
        while url:
            body = operator_api.get(url).json()
            seen += [row["external_id"] for row in body["results"]]
            url = body["next"]
        assert seen == order, ordering


def test_the_page_query_has_no_offset(operator_api, catalog):
    from django.test.utils import CaptureQueriesContext

    first = operator_api.get("/api/v1/products/?suggested_tag=navy&ordering=-score&page_size=1").json()
    with CaptureQueriesContext(connection) as queries:
        operator_api.get(first["next"])
    assert not any("OFFSET" in q["sql"] for q in queries.captured_queries)


# --- counts -----------------------------------------------------------------------------------------------


def test_count_is_exact_below_the_limit(operator_api, catalog):
    body = operator_api.get("/api/v1/products/?suggested_tag=navy&page_size=1").json()
    assert (body["count"], body["count_is_estimate"]) == (4, False)
    assert len(body["results"]) == 1
    body = operator_api.get("/api/v1/products/?category=Fashion&status=reviewed").json()
    assert (body["count"], body["count_is_estimate"]) == (3, False)


def test_count_above_the_limit_is_an_estimate_and_labelled(
    operator_api, operator_client, catalog, monkeypatch
):
    monkeypatch.setattr(search_module, "COUNT_EXACT_LIMIT", 3)
    body = operator_api.get("/api/v1/products/?suggested_tag=navy").json()
    assert body["count_is_estimate"] is True and body["count"] > 3
    body = operator_api.get("/api/v1/products/?suggested_tag=linen").json()
    assert (body["count"], body["count_is_estimate"]) == (2, False)
    html = operator_client.get("/products/?status=all&suggested_tag=navy").content.decode()
    assert re.search(r'id="result-count"[^>]*><span title="[^"]*">about [\d,]+</span> products', html)
    html = operator_client.get("/products/?status=all&suggested_tag=linen").content.decode()
    assert re.search(r'id="result-count"[^>]*>2 products match', html)


def test_bounded_count_catches_a_planner_that_guesses_low(catalog, monkeypatch):
    """A planner estimate below the limit does not make a large count exact: counting stops at limit + 1."""
    monkeypatch.setattr(search_module, "_planner_rows", lambda queryset: 1)
    result = search_count(Product.objects.all(), limit=4)
    assert result.is_estimate and result.value == 5
    assert search_count(Product.objects.all(), limit=6) == search_module.SearchCount(6, False)


def test_planner_estimate_is_used_above_the_limit(catalog):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_product")
    result = search_count(Product.objects.all(), limit=2)
    assert result.is_estimate and result.value >= 3  # ANALYZE saw six rows


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("suggested_tag=nosuchtag", "suggested_tag", "Unknown tag"),
        ("suggested_tag=navy&min_score=0.8&max_score=0.2", "min_score", "above max_score"),
        ("min_score=0.2", "min_score", "needs suggested_tag"),
        ("max_score=0.2", "max_score", "needs suggested_tag"),
        ("suggested_tag=navy&min_score=1.5", "min_score", "between 0 and 1"),
        ("suggested_tag=navy&max_score=high", "max_score", "number"),
        ("suggested_tag=navy&min_score=", "min_score", "empty"),
        ("model_version=v9", "model_version", "Unknown model version"),
        ("ordering=-score", "ordering", "suggested_tag"),
        ("ordering=title", "ordering", "title"),
        ("category=Fashion > > Tops", "category", "Empty level"),
        ("disagreement=maybe", "disagreement", "true or false"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(operator_api, catalog, query, field, words):
    response = operator_api.get(f"/api/v1/products/?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["fields"], body
    assert words.lower() in " ".join(body["fields"][field]).lower(), body


def test_no_active_version_is_a_400_for_the_suggestion_filters(operator_api, catalog):
    catalog["new"].__class__.objects.update(is_active=False)
    for query, field in (("suggested_tag=navy", "suggested_tag"), ("disagreement=true", "disagreement")):
        body = operator_api.get(f"/api/v1/products/?{query}").json()
        assert "No model version is active" in body["fields"][field][0]
    assert skus(operator_api.get("/api/v1/products/?suggested_tag=navy&model_version=v2"))


def test_cursor_of_another_order_is_a_400(operator_api, catalog):
    body = operator_api.get("/api/v1/products/?ordering=-priority&page_size=2").json()
    cursor = re.search(r"cursor=([^&]+)", body["next"]).group(1)
    response = operator_api.get(f"/api/v1/products/?ordering=updated&cursor={cursor}")
    assert response.status_code == 400 and "cursor" in response.json()["fields"]


# --- the products page ------------------------------------------------------------------------------------


def page_skus(html: str) -> list[str]:
    return re.findall(r'href="/products/\d+/">([^<]+)</a>', html)


def test_products_page_filters_and_keeps_them_in_the_url(operator_client, catalog):
    html = operator_client.get(
        "/products/",
        {
            "status": "all",
            "suggested_tag": "navy",
            "min_score": "0.5",
            "sort": "score",
            "category": "Fashion",
        },
    ).content.decode()
    assert page_skus(html) == ["P1", "P2"]
    assert re.search(r'id="result-count"[^>]*>2 products match', html)
    assert 'value="navy"' in html and 'value="0.5"' in html and 'value="Fashion"' in html
    assert '<td class="score">0.920</td>' in html
    html = operator_client.get("/products/?status=all&disagreement=on&sort=updated_asc").content.decode()
    assert page_skus(html) == ["P1", "P6", "P4", "P5", "P3"]
    assert "checked" in html
    html = operator_client.get("/products/?status=all&model_version=v1").content.decode()
    assert page_skus(html) == ["P6"] and '<option value="v1" selected>' in html  # v1 suggested P6 last


def test_products_page_pages_by_score_with_the_filters_in_the_next_link(operator_client, catalog):
    navy = catalog["navy"]
    for i in range(60):
        suggestions_create(ProductFactory(external_id=f"N{i:02d}"), catalog["new"], {navy: 0.6 + i / 1000})
    url, seen = "/products/?status=all&suggested_tag=navy&sort=score_asc&min_score=0.5", []
    while url:
        html = operator_client.get(url).content.decode()
        seen += page_skus(html)
        match = re.search(r'href="\?([^"]+)" rel="next"', html)
        url = "/products/?" + match.group(1).replace("&amp;", "&") if match else ""
        assert not match or "suggested_tag=navy" in match.group(1)
    assert seen == ["P4"] + [f"N{i:02d}" for i in range(60)] + ["P2", "P1"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("suggested_tag=nosuchtag", "suggested_tag: Unknown tag"),
        ("suggested_tag=navy&min_score=0.9&max_score=0.1", "min_score: min_score 0.9 is above max_score"),
        ("min_score=2", "min_score: Ensure this value is less than or equal to 1"),
        ("sort=score", "sort: Order"),
        ("category=A%20%3E%20%3E%20B", "category: Empty level"),
    ],
)
def test_products_page_names_a_bad_filter(operator_client, catalog, query, words):
    response = operator_client.get(f"/products/?{query}")
    assert response.status_code == 200
    assert words in response.content.decode().replace("&#x27;", "'")


# --- indexes (PostgreSQL) ---------------------------------------------------------------------------------


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a six-row table would rather be scanned
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_category_prefix_and_text_read_their_indexes(catalog):
    search = product_search_resolve(category="Fashion > Women")
    assert "product_category_idx" in _plan(products_search(Product.objects.all(), search))
    from annotation.selectors.catalog import products_matching_text

    text = products_matching_text(Product.objects.order_by(), "navy").values("pk")  # as search_count reads it
    assert "product_text_trgm_idx" in _plan(text)


def test_a_count_out_of_time_is_estimated_and_leaves_the_connection_as_it_was(catalog):
    from django.db.models import BooleanField
    from django.db.models.expressions import RawSQL

    slow = Product.objects.filter(RawSQL("pg_sleep(0.05) IS NOT NULL", [], output_field=BooleanField()))
    result = search_count(slow, budget_ms=20)  # the count and the sample both run out of time
    assert result.is_estimate
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
        cursor.execute("SELECT count(*) FROM annotation_product")  # the transaction is still usable
        assert cursor.fetchone()[0] == 6


def test_a_count_out_of_time_is_estimated_from_a_sample(catalog, monkeypatch):
    real = search_module._count_within
    calls = []

    def first_runs_out(sql, params, budget_ms):
        calls.append(sql)
        return None if len(calls) == 1 else real(sql, params, budget_ms)

    monkeypatch.setattr(search_module, "_count_within", first_runs_out)
    search = product_search_resolve(suggested_tag="navy")
    result = search_count(products_search(Product.objects.all(), search))
    # A six-row table is sampled whole (the sample aims at SAMPLE_ROWS products): the estimate is the count.
    assert "TABLESAMPLE SYSTEM" in calls[1]
    assert result == search_module.SearchCount(4, True)
