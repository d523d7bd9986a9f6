"""Catalog search on SQLite, the embedded mode's database (`make run`): the same selector, every filter, the
orders' keyset pages and the exact count. Runs in a child
process pointed at a fresh SQLite file (the suite's own database is PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

_SCRIPT = r"""
import json, sys
import django
from django.core.management import call_command
django.setup()
call_command("migrate", verbosity=0)
from django.db import connection
from annotation.models import ModelVersion, Product, ProductTag, Suggestion, Tag
from annotation.selectors.catalog import ProductListFilter, product_list, product_list_count
from annotation.selectors.search import (
    SEARCH_ORDERS, SearchParamError, product_search_resolve, products_search, search_count, search_page,
)

navy = Tag.objects.create(name="Navy", normalized_name="navy")
linen = Tag.objects.create(name="Linen", normalized_name="linen")
v2 = ModelVersion.objects.create(version="v2", state="ready", is_active=True)
paths = [["Fashion", "Women", "Dresses", "Maxi"], ["Fashion", "Women"], ["Fashion", "Men"], ["Home"], []]
products = [
    Product.objects.create(external_id=f"P{i}", title=f"Product {i}", category_path=path, suggested_by=v2,
                           review_status="reviewed" if i % 2 else "unreviewed", priority=i / 10)
    for i, path in enumerate(paths, start=1)
]
for product, score in zip(products, [0.9, 0.7, 0.4, 0.55]):
    Suggestion.objects.create(product=product, tag=navy, model_version=v2, score=score, selected=score >= 0.5)
ProductTag.objects.create(product=products[1], tag=navy, source="review")   # agrees
ProductTag.objects.create(product=products[2], tag=navy, source="review")   # .4: not selected
ProductTag.objects.create(product=products[4], tag=linen, source="review")  # never suggested

def skus(**params):
    search = product_search_resolve(**params)
    return sorted(p.external_id for p in products_search(Product.objects.all(), search))

def walk(order, **params):
    search = product_search_resolve(order=order, **params)
    qs = products_search(Product.objects.all(), search)
    seen, cursor = [], ""
    while True:
        page = search_page(qs, SEARCH_ORDERS[order], cursor=cursor, page_size=2)
        seen += [p.external_id for p in page.rows]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor

errors = {}
for name, params in {
    "unknown_tag": {"suggested_tag": "nosuch"},
    "min_above_max": {"suggested_tag": "navy", "min_score": 0.9, "max_score": 0.1},
    "bad_version": {"model_version": "v9"},
}.items():
    try:
        product_search_resolve(**params)
    except SearchParamError as exc:
        errors[name] = exc.param

with connection.cursor() as cursor:
    sql, params = products_search(Product.objects.all(), product_search_resolve(category="Fashion > Women")).query.sql_with_params()
    cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
    plan = " ".join(str(row) for row in cursor.fetchall())

html_filter = ProductListFilter(status="all", sort="score",
                                search=product_search_resolve(suggested_tag="navy", order="-score"))
out = {
    "vendor": connection.vendor,
    "navy": skus(suggested_tag="navy"),
    "navy_range": skus(suggested_tag="navy", min_score=0.5, max_score=0.8),
    "disagreement": skus(disagreement=True),
    "disagreement_navy": skus(disagreement=True, suggested_tag="navy"),
    "fashion": skus(category="Fashion"),
    "fashion_women": skus(category="Fashion > Women"),
    "deep": skus(category="Fashion > Women > Dresses > Maxi"),
    "version": skus(model_version="v2"),
    "reviewed": skus(status="reviewed"),
    "by_score": walk("-score", suggested_tag="navy"),
    "by_score_asc": walk("score", suggested_tag="navy"),
    "by_priority": walk("-priority"),
    "by_updated": walk("updated"),
    "count": search_count(products_search(Product.objects.all(), product_search_resolve(suggested_tag="navy"))),
    "html_rows": [p.external_id for p in product_list(filters=html_filter).rows],
    "html_count": product_list_count(filters=html_filter),
    "errors": errors,
    "plan": plan,
}
out["count"] = [out["count"].value, out["count"].is_estimate]
out["html_count"] = [out["html_count"].value, out["html_count"].is_estimate]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_catalog_search_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "tagstudio.settings",
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
        "SECRET_KEY": "sqlite-search-test-" + "x" * 40,
        "TAGSTUDIO_VAR_DIR": str(tmp_path / "var"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    assert out["vendor"] == "sqlite"
    assert out["navy"] == ["P1", "P2", "P3", "P4"]
    assert out["navy_range"] == ["P2", "P4"]
    # P1, P4: navy selected, not approved; P3: navy approved at .4; P5: linen approved, never suggested.
    assert out["disagreement"] == ["P1", "P3", "P4", "P5"]
    assert out["disagreement_navy"] == ["P1", "P3", "P4"]
    assert out["fashion"] == ["P1", "P2", "P3"]
    assert out["fashion_women"] == ["P1", "P2"]
    assert out["deep"] == ["P1"]
    assert out["version"] == ["P1", "P2", "P3", "P4", "P5"]
    assert out["reviewed"] == ["P1", "P3", "P5"]
    assert out["by_score"] == ["P1", "P2", "P4", "P3"]
    assert out["by_score_asc"] == ["P3", "P4", "P2", "P1"]
    assert out["by_priority"] == ["P5", "P4", "P3", "P2", "P1"]
    assert out["by_updated"] == ["P1", "P2", "P3", "P4", "P5"]  # same time: id breaks the tie
    assert out["count"] == [4, False]  # SQLite counts exactly
    assert out["html_rows"] == ["P1", "P2", "P4", "P3"] and out["html_count"] == [4, False]
    assert out["errors"] == {
        "unknown_tag": "suggested_tag",
        "min_above_max": "min_score",
        "bad_version": "model_version",
    }
    # SQLite gets the JSON path as a bound parameter, which its planner does not match against the
    # index's literal expression: it scans (embedded catalogs are small). PostgreSQL's plan is tested in
    # test_catalog_search.py.
    assert "annotation_product" in out["plan"]
