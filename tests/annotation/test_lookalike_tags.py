"""Invisible format characters (Unicode Cf) never make a second tag that displays like the first.

Issue 14, point 6: a zero-width space, a byte-order mark, a soft hyphen or a right-to-left mark inside
"apparel" made four more tags that all display as "apparel". Names and aliases drop Cf characters when
they are folded and when they are cleaned for display, on every entry point (catalog import, taxonomy
import, review submit, the REST tag endpoints), against the real PostgreSQL.
"""

from __future__ import annotations

import json

import pytest

from annotation.models import Product, ProductTag, Tag, TagAlias
from annotation.services.imports import import_products
from annotation.services.reviews import review_submit
from annotation.services.taxonomy_import import import_taxonomy
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name
from tests.factories import products_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

# Zero-width space, BOM (zero-width no-break space), soft hyphen, right-to-left mark, and a few more Cf.
LOOKALIKES = (
    "appa\u200brel",
    "\ufeffapparel",
    "appa\u00adrel",
    "apparel\u200f",
    "ap\u200dpa\u200crel",
    "\u2060apparel\u2066",
)


def all_tag_names() -> list[tuple[str, str]]:
    return sorted(Tag.objects.values_list("name", "normalized_name"))


def test_names_drop_format_characters():
    for name in LOOKALIKES:
        assert normalize_tag_name(name) == "apparel", ascii(name)
        assert clean_tag_display_name(name) == "apparel", ascii(name)
    assert clean_tag_display_name("Red\u200b Shoe") == "Red Shoe"
    for invisible in ("\u200b", "\ufeff \u00ad", "\u200f\u200e"):
        with pytest.raises(TagNameError):
            normalize_tag_name(invisible)


def test_catalog_import_makes_one_tag(tmp_path):
    rows = [{"id": f"p{index}", "title": "T", "tags": [name]} for index, name in enumerate(LOOKALIKES)]
    rows.append({"id": "plain", "title": "T", "tags": ["apparel"]})
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    stats = import_products(path)
    assert stats.rows_rejected == 0
    assert all_tag_names() == [("apparel", "apparel")]
    assert ProductTag.objects.count() == len(rows)


def test_taxonomy_import_makes_one_tag_and_clean_aliases(tmp_path):
    path = tmp_path / "taxonomy.csv"
    path.write_text("name,parent,aliases\nappa\u00adrel,,clo\u200bthing|\ufeffwear\n", encoding="utf-8")
    result = import_taxonomy(path)
    assert not result.errors, result.errors
    assert all_tag_names() == [("apparel", "apparel")]
    assert sorted(TagAlias.objects.values_list("name", "normalized_name")) == [
        ("clothing", "clothing"),
        ("wear", "wear"),
    ]
    again = tmp_path / "again.csv"
    again.write_text("name,parent,aliases\n" + "".join(f"{n},,\n" for n in LOOKALIKES), encoding="utf-8")
    import_taxonomy(again)
    assert all_tag_names() == [("apparel", "apparel")]


def test_review_submit_resolves_lookalikes_to_the_tag(admin_user):
    (product,) = products_create(1)
    review_submit(product=product, user=admin_user, tags=list(LOOKALIKES) + ["ne\u200bw"])
    assert all_tag_names() == [("apparel", "apparel"), ("new", "new")]
    assert set(ProductTag.objects.values_list("tag__name", flat=True)) == {"apparel", "new"}


def test_review_api_submit_adds_the_clean_tag(admin_api):
    (product,) = products_create(1)
    admin_api.post("/api/v1/review/next/")
    response = admin_api.post(
        f"/api/v1/products/{product.external_id}/review/",
        {"tags": ["appa\u00adrel", "\ufeffApparel"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["tags"] == ["apparel"]
    assert all_tag_names() == [("apparel", "apparel")]
    assert Product.objects.get(pk=product.pk).review_status == "reviewed"


def test_rest_create_rename_and_alias_drop_format_characters(admin_api):
    created = admin_api.post("/api/v1/tags/", {"name": "appa\u200brel"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "apparel"
    tag_id = created.json()["id"]
    for name in LOOKALIKES:
        response = admin_api.post("/api/v1/tags/", {"name": name}, format="json")
        assert response.status_code == 409, (ascii(name), response.content)
    renamed = admin_api.patch(f"/api/v1/tags/{tag_id}/", {"name": "Appa\u00adrel\u200f"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "Apparel"
    alias = admin_api.post(f"/api/v1/tags/{tag_id}/aliases/", {"name": "clo\ufeffthes"}, format="json")
    assert alias.status_code == 201, alias.content
    assert TagAlias.objects.filter(tag_id=tag_id, name="clothes", normalized_name="clothes").exists()
    assert all_tag_names() == [("Apparel", "apparel")]
