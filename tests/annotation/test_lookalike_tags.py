"""Invisible format characters (Unicode Cf) never make a second tag that displays like the first.

Issue 14, point 6: a zero-width space, a byte-order mark, a soft hyphen or a right-to-left mark inside
"apparel" made four more tags that all display as "apparel". Names and aliases drop Cf characters when
they are folded and when they are cleaned for display, on every entry point (catalog import, taxonomy
import, review submit, the REST tag endpoints), against the real PostgreSQL.
"""

from __future__ import annotations

import json
from importlib import import_module

import pytest
from django.apps import apps

from annotation.models import Product, ProductTag, Tag, TagAlias
from annotation.services.imports import import_products
from annotation.services.reviews import review_submit
from annotation.services.taxonomy_import import import_taxonomy
from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name
from tests.factories import ProductTagFactory, products_create

migration = import_module("annotation.migrations.0005_tag_names_drop_format_characters")

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


def test_migration_cleans_stored_names_and_leaves_collisions(caplog):
    """Migration 0005 on rows stored under the old rule (written directly, as the old code did)."""
    zwsp = Tag.objects.create(name="Appa\u200brel", normalized_name="appa\u200brel")
    shy = Tag.objects.create(name="appa\u00adrel", normalized_name="appa\u00adrel")  # collides with zwsp
    rlm = Tag.objects.create(name="Shoes\u200f", normalized_name="shoes\u200f")
    plain = Tag.objects.create(name="Hats", normalized_name="hats")
    bom_alias = TagAlias.objects.create(tag=rlm, name="\ufeffsneakers", normalized_name="\ufeffsneakers")
    taken_alias = TagAlias.objects.create(tag=rlm, name="ha\u200bts", normalized_name="ha\u200bts")
    only_invisible = TagAlias.objects.create(tag=plain, name="\u200b", normalized_name="\u200b")
    (product,) = products_create(1)
    ProductTagFactory(product=product, tag=rlm)

    with caplog.at_level("WARNING", logger="annotation.migrations"):
        migration.clean_stored_names(apps, None)

    def name_of(row) -> tuple[str, str]:
        row.refresh_from_db()
        return row.name, row.normalized_name

    assert name_of(zwsp) == ("Apparel", "apparel")
    assert name_of(shy) == ("appa\u00adrel", "appa\u00adrel")  # its clean key is zwsp's now: left, logged
    assert name_of(rlm) == ("Shoes", "shoes")
    assert name_of(plain) == ("Hats", "hats")
    assert name_of(bom_alias) == ("sneakers", "sneakers")
    assert name_of(taken_alias) == ("ha\u200bts", "ha\u200bts")  # "hats" is a tag: left, logged
    assert name_of(only_invisible) == ("\u200b", "\u200b")
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert f"tag {shy.pk} " in logged and f"alias {taken_alias.pk} " in logged
    assert f"alias {only_invisible.pk} " in logged
    assert Product.objects.get(pk=product.pk).tags_updated_at is not None
    migration.clean_stored_names(apps, None)  # a second run changes nothing
    assert name_of(zwsp) == ("Apparel", "apparel") and name_of(shy) == ("appa\u00adrel", "appa\u00adrel")
