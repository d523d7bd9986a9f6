"""Catalog import into the real PostgreSQL: upsert rules, tags, history, both writers, the parser process."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from annotation.io import readers
from annotation.io.readers import FileFormatError, JsonlReader, ProductRow
from annotation.models import Product, ProductTag, ReviewEvent, ReviewStatus, Tag, TagAlias, TagSource
from annotation.services import imports
from annotation.services.imports import (
    import_products,
    parse_batches,
    pg_writer,
    write_products_generic,
    write_tags_generic,
)
from annotation.taxonomy.resolver import TagResolver
from tests.factories import catalog_jsonl_write

pytestmark = pytest.mark.django_db

CATALOG = [
    {
        "id": "sku-1",
        "title": "Red cotton T-shirt",
        "description": "Soft\tcotton,\nmachine washable \\ 30°",
        "brand": "Acme",
        "category_path": ["Apparel", "Topwear"],
        "tags": ["Apparel", "Red"],
        "lang": "en",
        "source": "test",
    },
    {"id": "sku-2", "title": "Blue jeans", "tags": [], "lang": "en"},
    {
        "id": "zh-1",
        "title": "北京搬家公司长途搬家",
        "brand": "红木",
        "tags": ["品类:搬家", "其他:北京"],
        "lang": "zh",
    },
    {"id": 1001, "title": "Numeric SKU", "attributes": {"size": "M", "note": "a\\b"}},
]


def snapshot() -> dict:
    """What the database holds for the catalog: products with their stamps, and approved tags."""
    products = {
        p["external_id"]: p
        for p in Product.objects.values(
            "external_id",
            "id",
            "title",
            "description",
            "brand",
            "category_path",
            "attributes",
            "lang",
            "content_hash",
            "created_at",
            "updated_at",
            "tags_updated_at",
        )
    }
    tags = sorted(
        ProductTag.objects.values_list("product__external_id", "tag__name", "source", "approved_at", "id")
    )
    return {
        "products": products,
        "tags": tags,
        "tag_rows": sorted(Tag.objects.values_list("normalized_name", "name")),
    }


def tags_of(external_id: str) -> set[str]:
    return set(
        ProductTag.objects.filter(product__external_id=external_id).values_list("tag__name", flat=True)
    )


def test_import_creates_products_and_approved_import_tags(tmp_path):
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG))
    assert (stats.rows_total, stats.rows_ok, stats.rows_rejected) == (4, 4, 0)
    assert (stats.products_created, stats.products_updated, stats.tags_added) == (4, 0, 4)

    shirt = Product.objects.get(external_id="sku-1")
    assert shirt.description == "Soft\tcotton,\nmachine washable \\ 30°"  # COPY escapes round-trip
    assert shirt.category_path == ["Apparel", "Topwear"]
    assert shirt.attributes == {}  # `source` is provenance, not an attribute
    assert shirt.review_status == ReviewStatus.UNREVIEWED and shirt.needs_suggestion
    assert shirt.tags_updated_at is not None and shirt.created_at == shirt.updated_at
    assert Product.objects.get(external_id="1001").attributes == {"size": "M", "note": "a\\b"}
    assert Product.objects.get(external_id="sku-2").tags_updated_at is None

    assert tags_of("sku-1") == {"Apparel", "Red"}
    assert tags_of("zh-1") == {"品类:搬家", "其他:北京"}
    assert set(ProductTag.objects.values_list("source", flat=True)) == {TagSource.IMPORT}
    assert Tag.objects.get(normalized_name="red").name == "Red"


def test_bad_rows_are_reported_and_good_rows_imported(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"".join(
            [
                b'{"id": "ok-1", "title": "Good row"}\n',
                b'{"id": "bad-1", "title": 42}\n',
                b'{"id": "bad-2"}\n',
                b'{"id": "bad-3", "title": "' + b"x" * 1001 + b'"}\n',
                b'{"id": "bad-4", "title": "broken\n',
                b'{"id": "bad-5", "title": "caf\xe9"}\n',
                b'{"id": "ok-2", "title": "Another good row", "tags": ["Fine"]}\n',
            ]
        )
    )
    stats = import_products(path)
    assert (stats.rows_total, stats.rows_ok, stats.rows_rejected, stats.products_created) == (7, 2, 5, 2)
    assert [(e.line, e.field) for e in stats.errors] == [
        (2, "title"),
        (3, "title"),
        (4, "title"),
        (5, "(line)"),
        (6, "(line)"),
    ]
    assert stats.errors[0].reason == "must be a string, got number"
    assert stats.errors[1].reason == "is required"
    assert stats.errors[2].reason == "is 1001 characters long (at most 1000)"
    assert stats.errors[4].reason == "invalid UTF-8 at byte 30"
    assert set(Product.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-2"}


def test_error_details_are_capped_but_every_rejected_row_is_counted(tmp_path, settings):
    settings.IMPORT_MAX_ERRORS_KEPT = 3
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", [{"id": f"b{i}"} for i in range(10)]))
    assert (stats.rows_rejected, len(stats.errors)) == (10, 3)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01"),
        ("noheader.csv", b"sku-1,Red shirt\nsku-2,Blue shirt\n"),
        ("array.json", b'[{"id": "a", "title": "t"}]'),
    ],
)
def test_a_file_that_is_not_a_catalog_writes_nothing(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FileFormatError):
        import_products(path)
    assert not Product.objects.exists()


def test_reimporting_the_same_file_changes_nothing(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG)
    import_products(path)
    before = snapshot()
    stats = import_products(path)
    assert (stats.products_created, stats.products_updated, stats.tags_added, stats.products_unchanged) == (
        0,
        0,
        0,
        4,
    )
    assert snapshot() == before


def test_changed_row_updates_the_product_and_keeps_its_history(tmp_path, operator):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG)
    import_products(path)
    shirt = Product.objects.get(external_id="sku-1")
    # Review history on the product: an operator's tag and an audit event; the suggestion flag is cleared.
    cotton = Tag.objects.create(name="Cotton", normalized_name="cotton")
    ProductTag.objects.create(product=shirt, tag=cotton, source=TagSource.REVIEW, approved_by=operator)
    event = ReviewEvent.objects.create(product=shirt, user=operator, action="submit", final_tags=["Cotton"])
    Product.objects.filter(pk=shirt.pk).update(needs_suggestion=False)
    other_before = snapshot()["products"]["sku-2"]

    changed = [
        dict(CATALOG[0], title="Red organic cotton T-shirt", tags=["Apparel", "Red", "Organic"]),
        *CATALOG[1:],
    ]
    stats = import_products(catalog_jsonl_write(tmp_path / "c2.jsonl", changed))

    assert (stats.products_created, stats.products_updated, stats.tags_added) == (0, 1, 1)
    updated = Product.objects.get(pk=shirt.pk)
    assert updated.title == "Red organic cotton T-shirt"
    assert updated.content_hash != shirt.content_hash and updated.needs_suggestion
    assert updated.created_at == shirt.created_at and updated.updated_at > shirt.updated_at
    assert updated.tags_updated_at > shirt.tags_updated_at
    assert tags_of("sku-1") == {"Apparel", "Red", "Organic", "Cotton"}
    assert ProductTag.objects.get(product=shirt, tag=cotton).source == TagSource.REVIEW
    assert ReviewEvent.objects.filter(pk=event.pk, product=shirt).exists()
    assert snapshot()["products"]["sku-2"] == other_before


def test_a_reviewed_product_keeps_the_tags_its_reviewer_chose(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG)
    import_products(path)
    shirt = Product.objects.get(external_id="sku-1")
    ProductTag.objects.filter(product=shirt, tag__normalized_name="red").delete()  # the reviewer removed it
    Product.objects.filter(pk=shirt.pk).update(review_status=ReviewStatus.REVIEWED)

    stats = import_products(path)
    assert stats.tags_added == 0
    assert tags_of("sku-1") == {"Apparel"}
    # An unreviewed product still takes tags the file adds.
    grown = [CATALOG[0], dict(CATALOG[1], tags=["Denim"]), *CATALOG[2:]]
    assert import_products(catalog_jsonl_write(tmp_path / "c2.jsonl", grown)).tags_added == 1
    assert tags_of("sku-2") == {"Denim"} and tags_of("sku-1") == {"Apparel"}


def test_tag_names_fold_and_aliases_resolve_to_existing_tags(tmp_path):
    tshirt = Tag.objects.create(name="T-Shirt", normalized_name="t shirt")
    TagAlias.objects.create(tag=tshirt, name="Tee", normalized_name="tee")
    rows = [{"id": "a", "title": "A tee", "tags": ["t_shirt", "TEE", "Ｔ－ＳＨＩＲＴ", "  t  shirt "]}]
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", rows))
    assert stats.tags_added == 1
    assert list(ProductTag.objects.values_list("tag_id", flat=True)) == [tshirt.pk]
    assert Tag.objects.count() == 1


def test_ignore_tags_loads_the_products_alone(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG)
    stats = import_products(path, ignore_tags=True)
    assert (stats.products_created, stats.tags_added) == (4, 0)
    assert not Tag.objects.exists() and not ProductTag.objects.exists()
    assert not Product.objects.filter(tags_updated_at__isnull=False).exists()
    # The same file with tags afterwards: products unchanged, tags added.
    stats = import_products(path)
    assert (stats.products_created, stats.products_updated, stats.tags_added) == (0, 0, 4)


def test_csv_imports_the_same_catalog_as_jsonl(tmp_path):
    import_products(catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG))
    from_jsonl = snapshot()
    Product.objects.all().delete()
    Tag.objects.all().delete()

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "title", "description", "brand", "category_path", "tags", "lang", "attributes"])
    for row in CATALOG:
        writer.writerow(
            [
                row["id"],
                row["title"],
                row.get("description", ""),
                row.get("brand", ""),
                " > ".join(row.get("category_path") or []),
                "|".join(row.get("tags") or []),
                row.get("lang", ""),
                json.dumps(row["attributes"]) if "attributes" in row else "",
            ]
        )
    (tmp_path / "c.csv").write_text(buffer.getvalue(), encoding="utf-8")
    stats = import_products(tmp_path / "c.csv")
    assert (stats.rows_ok, stats.products_created, stats.tags_added) == (4, 4, 4)
    from_csv = snapshot()

    def comparable(snap: dict) -> tuple:
        keys = ("title", "description", "brand", "category_path", "attributes", "lang", "content_hash")
        products = {eid: tuple(p[k] for k in keys) for eid, p in snap["products"].items()}
        return products, [t[:3] for t in snap["tags"]]

    assert comparable(from_csv) == comparable(from_jsonl)


def test_a_repeated_id_in_one_file_takes_the_later_row(tmp_path):
    rows = [{"id": "dup", "title": "First"}, {"id": "x", "title": "Other"}, {"id": "dup", "title": "Second"}]
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", rows))
    assert stats.products_created == 2
    assert Product.objects.get(external_id="dup").title == "Second"


def test_into_an_empty_catalog_an_id_repeated_in_a_later_batch_updates_the_product(tmp_path):
    # An empty catalog skips the id lookups except for ids an earlier batch of the same import wrote.
    rows = [
        {"id": "a", "title": "First A", "tags": ["Red"]},
        {"id": "b", "title": "B"},
        {"id": "c", "title": "C"},
        {"id": "a", "title": "Second A", "tags": ["Blue"]},
        {"id": "d", "title": "D"},
    ]
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", rows), batch_size=2, parallel=False)
    assert (stats.products_created, stats.products_updated, stats.tags_added) == (4, 1, 2)
    assert Product.objects.get(external_id="a").title == "Second A"
    assert tags_of("a") == {"Red", "Blue"}


def test_into_an_empty_catalog_a_concurrent_writer_still_falls_back_to_upsert(tmp_path, monkeypatch):
    # The catalog was empty when the import started; another writer created sku-1 before its batch.
    real_for_catalog = imports._WrittenIds.for_catalog

    def empty_then_written():
        written = real_for_catalog()
        Product.objects.create(external_id="sku-1", title="Created meanwhile", content_hash="other")
        return written

    monkeypatch.setattr(imports._WrittenIds, "for_catalog", staticmethod(empty_then_written))
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG))
    assert (stats.products_created, stats.products_updated) == (3, 1)
    assert Product.objects.get(external_id="sku-1").title == "Red cotton T-shirt"


def _catalog_with_everything(size: int) -> list:
    rows: list = []
    for i in range(size):
        if i % 17 == 5:
            rows.append({"id": f"bad-{i}", "title": i})
        elif i % 23 == 7:
            rows.append('{"id": "broken"')
        else:
            tags = [f"Tag {i % 7}", "品类:测试"] if i % 3 == 0 else None
            row = {"id": f"p-{i % 180}", "title": f"Product {i} 商品", "description": "line\nbreak\ttab"}
            if tags:
                row["tags"] = tags
            rows.append(row)
    return rows


def test_the_parser_process_gives_the_same_result_as_in_process_parsing(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", _catalog_with_everything(400))
    in_process = import_products(path, batch_size=40, parallel=False)
    expected = snapshot()
    Product.objects.all().delete()
    Tag.objects.all().delete()

    piped = import_products(path, batch_size=40, parallel=True)
    assert piped == in_process
    assert piped.rows_rejected > 0 and piped.products_updated > 0  # repeated ids across batches update

    def comparable(snap: dict) -> tuple:
        keys = ("title", "description", "content_hash")
        return {e: tuple(p[k] for k in keys) for e, p in snap["products"].items()}, [
            t[:3] for t in snap["tags"]
        ]

    assert comparable(snapshot()) == comparable(expected)


def test_a_failing_parser_process_fails_the_import_instead_of_hanging(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("validator exploded")

    monkeypatch.setattr(readers, "validate_row", broken)  # inherited by the forked parser
    path = catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG)
    with pytest.raises(RuntimeError, match="validator exploded"):
        import_products(path, parallel=True)
    assert not Product.objects.exists()


def test_a_concurrent_writer_makes_the_batch_fall_back_to_upsert(tmp_path, monkeypatch):
    # Another import created sku-1 after this batch looked up its ids: the lookup saw nothing.
    Product.objects.create(external_id="sku-1", title="Created meanwhile", content_hash="other")
    monkeypatch.setattr(pg_writer, "_lookup", lambda cursor, external_ids: {})
    stats = import_products(catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG))
    assert (stats.products_created, stats.products_updated, stats.tags_added) == (3, 1, 4)
    assert Product.objects.get(external_id="sku-1").title == "Red cotton T-shirt"
    assert tags_of("sku-1") == {"Apparel", "Red"}
    assert Tag.objects.count() == 4


def _rows(path: Path) -> list[ProductRow]:
    with path.open("rb") as stream:
        return [row for row in JsonlReader(stream).rows() if isinstance(row, ProductRow)]


def test_generic_writer_follows_the_same_rules(tmp_path):
    """The embedded (SQLite) mode's writer, run here on PostgreSQL through Django's bulk operations."""
    rows = _rows(catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG))
    resolver = TagResolver()
    created, updated, ids = write_products_generic(rows)
    assert (created, updated) == (4, 0)
    assert write_tags_generic(rows, ids, resolver) == 4
    before = snapshot()

    created, updated, ids = write_products_generic(rows)
    assert (created, updated, write_tags_generic(rows, ids, resolver)) == (0, 0, 0)
    assert snapshot() == before

    Product.objects.filter(external_id="zh-1").update(review_status=ReviewStatus.REVIEWED)
    changed = _rows(
        catalog_jsonl_write(
            tmp_path / "c2.jsonl",
            [
                dict(CATALOG[0], title="Renamed"),
                dict(CATALOG[2], tags=["New tag"]),
                dict(CATALOG[1], tags=["Denim"]),
            ],
        )
    )
    created, updated, ids = write_products_generic(changed)
    assert (created, updated) == (0, 1)
    assert write_tags_generic(changed, ids, resolver) == 1  # Denim; zh-1 is reviewed
    assert Product.objects.get(external_id="sku-1").title == "Renamed"
    assert tags_of("zh-1") == {"品类:搬家", "其他:北京"} and tags_of("sku-2") == {"Denim"}


def test_parse_batches_encodes_copy_lines_for_postgres(tmp_path):
    path = catalog_jsonl_write(tmp_path / "c.jsonl", CATALOG)
    (batch,) = parse_batches(path, "jsonl", batch_size=100, max_errors=10, encode=True)
    assert batch.external_ids == ["sku-1", "sku-2", "zh-1", "1001"]
    lines = batch.copy_lines()
    assert len(lines) == 4 and batch.copy_payload == b"".join(line + b"\n" for line in lines)
    first = lines[0].decode().split("\t")
    assert first[:2] == ["sku-1", "Red cotton T-shirt"]
    assert first[2] == "Soft\\tcotton,\\nmachine washable \\\\ 30°"
    assert first[4] == '["Apparel","Topwear"]'
    (row,) = [r for r in _rows(path) if r.external_id == "sku-1"]
    assert first[-1] == row.content_hash  # the generic writer stores the same hash
    assert batch.tag_rows == [(0, ["Apparel", "Red"]), (2, ["品类:搬家", "其他:北京"])]
