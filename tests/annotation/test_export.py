"""Export of approved tags: formats, both engines, incremental sync with a safe high-water mark, the HTTP
stream, the command and the background job."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import time

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from annotation.io.writers import CSV_COLUMNS
from annotation.models import ExportJob, JobStatus, Product, ProductTag, TagSource
from annotation.services import exports
from annotation.services.tags import tag_create, tag_deactivate, tag_merge, tag_rename
from tests.factories import ModelVersionFactory, ProductFactory, ProductTagFactory

pytestmark = pytest.mark.django_db

# Approve a tag the way the services do: the product's tags_updated_at moves with it.
approve = functools.partial(ProductTagFactory, stamp_product=True)


@pytest.fixture
def catalog(admin_user):
    """A small catalog with a hierarchy, a merge, a rename, a deactivation and awkward external ids."""
    clothing = tag_create(name="Clothing")
    tops = tag_create(name="Tops", parent=clothing)
    shirts = tag_create(name="Shirts", parent=tops)
    tee = tag_create(name="Tee")
    denim = tag_create(name="jean")
    vintage = tag_create(name="Vintage")
    version = ModelVersionFactory(version="v7")
    p1 = ProductFactory(external_id="p1", title="Oxford shirt")
    p2 = ProductFactory(external_id="a/b", title="Tee with slash id")
    p3 = ProductFactory(external_id='sku,"3"', title="Vintage only")
    ProductFactory(external_id="untagged", title="Never tagged")
    approve(product=p1, tag=shirts, approved_by=admin_user, model_version=version)
    approve(product=p1, tag=denim, source=TagSource.IMPORT)
    approve(product=p2, tag=tee, approved_by=admin_user)
    approve(product=p2, tag=vintage, approved_by=admin_user)
    approve(product=p3, tag=vintage, source=TagSource.IMPORT)
    tag_merge(source=tee, target=shirts)
    tag_rename(tag=denim, name="Jeans")
    tag_deactivate(tag=vintage)
    return {"products": (p1, p2, p3), "user": admin_user}


def read_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def run(file_format: str, engine: str | None = None, since=None):
    export = exports.approved_tags_export(file_format=file_format, updated_since=since, engine=engine)
    return export, b"".join(export.chunks())


def product_tags(records: list[dict]) -> dict[str, list[tuple]]:
    """Each product's tags (in no particular order in the export), sorted by name."""
    return {
        r["external_id"]: sorted(
            (t["name"], tuple(t["path"]), t["source"], t["approved_by"]) for t in r["tags"]
        )
        for r in records
        if r["type"] == "product"
    }


def sorted_tags(records):
    """Records with each product's tags sorted by name (tag order carries no meaning)."""
    for record in records:
        if record.get("type") == "product":
            record["tags"].sort(key=lambda t: t["name"])
    return records


@pytest.mark.parametrize("engine", ["copy", "python"])
def test_jsonl_full_export(catalog, engine):
    export, data = run("jsonl", engine)
    records = read_jsonl(data)
    assert [r["type"] for r in records[:2]] == ["deleted_tag", "deleted_tag"]
    assert records[-1]["type"] == "end"
    deleted = {r["name"]: (r["reason"], r["replaced_by"]) for r in records if r["type"] == "deleted_tag"}
    assert deleted == {"Tee": ("merged", "Shirts"), "Vintage": ("deactivated", None)}
    assert product_tags(records) == {
        "p1": [
            ("Jeans", ("Jeans",), "import", None),
            ("Shirts", ("Clothing", "Tops", "Shirts"), "review", "adam"),
        ],
        "a/b": [("Shirts", ("Clothing", "Tops", "Shirts"), "merge", "adam")],
        'sku,"3"': [],  # its only tag was deactivated: consumers drop it
    }
    p1 = next(r for r in sorted_tags(records) if r.get("external_id") == "p1")
    assert p1["tags"][1]["model_version"] == "v7"
    assert p1["updated_at"].endswith("+00:00") and dt.datetime.fromisoformat(p1["tags"][0]["approved_at"])
    end = records[-1]
    assert end["products"] == 3 and end["deleted_tags"] == 2 and end["updated_since"] is None
    assert dt.datetime.fromisoformat(end["high_water_mark"]) == export.high_water_mark
    assert export.rows == 3


def test_json_envelope_matches_jsonl(catalog):
    _, data = run("json")
    body = json.loads(data)
    assert body["format"] == "tagstudio.approved-tags.v1"
    assert body["product_count"] == len(body["products"]) == 3
    assert {t["name"] for t in body["deleted_tags"]} == {"Tee", "Vintage"}
    _, lines = run("jsonl")
    assert product_tags(body["products"]) == product_tags(read_jsonl(lines))


def test_json_envelope_with_no_products(db):
    body = json.loads(run("json")[1])
    assert body["products"] == [] and body["product_count"] == 0


def test_csv_rows_and_quoting(catalog):
    _, data = run("csv")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    by_record = [(r["record"], r["external_id"], r["tag"], r["tag_path"], r["replaced_by"]) for r in rows]
    by_record[2:4] = sorted(by_record[2:4])  # a product's tags come in no particular order
    assert by_record == [
        ("deleted_tag", "", "Tee", "Tee", "Shirts"),
        ("deleted_tag", "", "Vintage", "Vintage", ""),
        ("tag", "p1", "Jeans", "Jeans", ""),
        ("tag", "p1", "Shirts", "Clothing > Tops > Shirts", ""),
        ("tag", "a/b", "Shirts", "Clothing > Tops > Shirts", ""),
        ("no_tags", 'sku,"3"', "", "", ""),
    ]


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "json"])
def test_engines_write_the_same_records(catalog, file_format):
    _, fast = run(file_format, "copy")
    _, portable = run(file_format, "python")
    if file_format == "csv":
        assert sorted(csv.reader(io.StringIO(fast.decode()))) == sorted(
            csv.reader(io.StringIO(portable.decode()))
        )
        return
    if file_format == "json":
        fast_records, portable_records = json.loads(fast), json.loads(portable)
        sorted_tags(fast_records["products"]), sorted_tags(portable_records["products"])
        fast_records.pop("high_water_mark"), portable_records.pop("high_water_mark")
    else:
        fast_records, portable_records = sorted_tags(read_jsonl(fast)), sorted_tags(read_jsonl(portable))
        fast_records[-1].pop("high_water_mark"), portable_records[-1].pop("high_water_mark")
    assert fast_records == portable_records


def test_engines_write_the_same_bytes_for_one_tag_per_product(catalog):
    """With one tag per product (no order to differ) the two engines' lines are byte for byte the same."""
    ProductTag.objects.filter(product__external_id="p1", tag__name="Jeans").delete()
    for file_format in ("jsonl", "csv"):
        fast = run(file_format, "copy")[1].splitlines()
        portable = run(file_format, "python")[1].splitlines()
        end = -1 if file_format == "jsonl" else None  # the JSONL end line carries each run's high-water mark
        assert fast[:end] == portable[:end]


def test_incremental_export_from_the_high_water_mark(catalog, settings):
    settings.EXPORT_HIGH_WATER_MARGIN_SECONDS = 0
    p1, p2, _ = catalog["products"]
    first, _ = run("jsonl")
    Product.objects.filter(pk__in=[p1.pk, p2.pk]).update(
        tags_updated_at=first.high_water_mark - dt.timedelta(hours=1)
    )
    # After the mark: a new approval on p1, and p2 loses its last tag.
    approve(product=p1, tag=tag_create(name="Linen"))
    ProductTag.objects.filter(product=p2).delete()
    Product.objects.filter(pk=p2.pk).update(tags_updated_at=timezone.now())
    tag_deactivate(tag=tag_create(name="Retired"))

    second, data = run("jsonl", since=first.high_water_mark)
    records = read_jsonl(data)
    assert {
        r["external_id"]: sorted(t["name"] for t in r["tags"]) for r in records if r["type"] == "product"
    } == {
        "p1": ["Jeans", "Linen", "Shirts"],
        "a/b": [],
    }
    assert [r["name"] for r in records if r["type"] == "deleted_tag"] == ["Retired"]
    assert records[-1]["updated_since"] is not None
    assert second.high_water_mark >= first.high_water_mark


def test_high_water_mark_waits_for_open_transactions(db, settings):
    """A write that is still uncommitted while the export reads must land at or after the mark."""
    settings.EXPORT_HIGH_WATER_MARGIN_SECONDS = 0
    params = connection.get_connection_params()
    with psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        autocommit=False,
    ) as other:
        (started,) = other.execute("SELECT now()").fetchone()  # a transaction is now open
        mark = exports.approved_tags_export(file_format="jsonl").high_water_mark
        assert mark <= started
    # Once it is gone (the server notices the disconnect within moments) the mark moves past it.
    deadline = time.monotonic() + 5
    while exports.approved_tags_export(file_format="jsonl").high_water_mark <= started:
        assert time.monotonic() < deadline, "the mark stayed behind a closed transaction"
        time.sleep(0.05)


def test_margin_moves_the_mark_back(db, settings):
    settings.EXPORT_HIGH_WATER_MARGIN_SECONDS = 0
    without = exports.approved_tags_export(file_format="csv").high_water_mark
    settings.EXPORT_HIGH_WATER_MARGIN_SECONDS = 60
    with_margin = exports.approved_tags_export(file_format="csv").high_water_mark
    assert without - with_margin > dt.timedelta(seconds=55)


def test_stream_is_chunked_not_one_blob(db, monkeypatch):
    Product.objects.bulk_create(
        Product(external_id=f"x{i}", title="t", tags_updated_at=timezone.now()) for i in range(3000)
    )
    export = exports.approved_tags_export(file_format="jsonl")
    chunks = list(export.chunks())
    assert len(chunks) > 3 and max(len(c) for c in chunks) < 2 * 64 * 1024
    assert export.rows == 3000


def test_unknown_format_or_engine(db):
    with pytest.raises(exports.ExportError):
        exports.approved_tags_export(file_format="xml")
    with pytest.raises(exports.ExportError):
        exports.approved_tags_export(file_format="csv", engine="magic")


def test_export_count_estimates_the_products(catalog):
    for file_format in ("jsonl", "csv"):
        export, _ = run(file_format)
        assert export.rows == 3  # rows are product records in every format
        assert exports.export_count() == export.rows


# --- HTTP --------------------------------------------------------------------------------------------------


def test_http_stream(admin_api, catalog):
    response = admin_api.get("/api/v1/export/approved-tags/", {"format": "jsonl"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith('attachment; filename="approved-tags-')
    records = read_jsonl(b"".join(response.streaming_content))
    assert records[-1]["high_water_mark"] == response["X-High-Water-Mark"]
    assert len([r for r in records if r["type"] == "product"]) == 3


def test_http_incremental_and_csv(admin_api, catalog):
    mark = admin_api.get("/api/v1/export/approved-tags/?format=csv")["X-High-Water-Mark"]
    response = admin_api.get("/api/v1/export/approved-tags/", {"format": "csv", "updated_since": mark})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == list(CSV_COLUMNS)


def test_http_json_is_one_document(admin_api, catalog):
    response = admin_api.get("/api/v1/export/approved-tags/?format=json")
    body = json.loads(b"".join(response.streaming_content))
    assert body["high_water_mark"] == response["X-High-Water-Mark"]


def test_http_bad_since_is_400(admin_api):
    response = admin_api.get("/api/v1/export/approved-tags/?updated_since=yesterday")
    assert response.status_code == 400 and "updated_since" in response.json()["fields"]


def test_operators_cannot_export(operator_api):
    assert operator_api.get("/api/v1/export/approved-tags/").status_code == 403


# --- command -----------------------------------------------------------------------------------------------


def test_command_writes_a_file(catalog, tmp_path, capsys):
    target = tmp_path / "out" / "tags.csv"
    call_command("export_tags", str(target), "--format", "csv")
    captured = capsys.readouterr()
    assert "High-water mark: " in captured.err and "Exported 3 products" in captured.err
    assert target.read_text().startswith("record,external_id,")
    assert not list(target.parent.glob(".*partial"))


def test_command_incremental_to_stdout(catalog, capsysbinary):
    call_command("export_tags", "-", "--updated-since", "2999-01-01T00:00:00Z")
    records = read_jsonl(capsysbinary.readouterr().out)
    assert [r["type"] for r in records] == ["end"]


def test_command_rejects_a_bad_date(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="ISO-8601"):
        call_command("export_tags", "-", "--updated-since", "last tuesday")


# --- background job ----------------------------------------------------------------------------------------


def test_export_job_runs_once_and_serves_its_file(
    admin_api, admin_user, catalog, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_api.post("/api/v1/exports/", {"format": "json"}, format="json")
    assert response.status_code == 202 and len(callbacks) == 1  # enqueued after commit
    job_id = response.json()["id"]
    assert admin_api.get(f"/api/v1/exports/{job_id}/download/").status_code == 409

    job = exports.export_job_run(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.rows == 3 and job.high_water_mark is not None
    assert exports.export_job_run(job_id).finished_at == job.finished_at  # a duplicate delivery is a no-op

    detail = admin_api.get(f"/api/v1/exports/{job_id}/").json()
    assert detail["status"] == "succeeded" and detail["rows"] == 3
    download = admin_api.get(f"/api/v1/exports/{job_id}/download/")
    assert download.status_code == 200
    assert json.loads(b"".join(download.streaming_content))["product_count"] == 3

    client.force_login(admin_user)
    page = client.get("/exports/")
    assert page.status_code == 200 and f"/exports/{job_id}/download/".encode() in page.content
    html_download = client.get(f"/exports/{job_id}/download/")
    assert html_download.status_code == 200 and html_download["Content-Type"] == "application/json"


def test_exports_page_starts_a_job(admin_user, client, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/exports/", {"file_format": "csv", "updated_since": "2026-01-01T00:00:00Z"})
    assert response.status_code == 302 and len(callbacks) == 1
    job = ExportJob.objects.get()
    assert (job.file_format, job.status, job.created_by) == ("csv", JobStatus.QUEUED, admin_user)
    assert client.get("/exports/jobs/").status_code == 200
    assert client.post("/exports/", {"file_format": "xml"}).status_code == 400


def test_failed_job_records_the_error(db, settings, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings.EXPORT_DIR = blocker  # the file cannot be created below a regular file
    job = ExportJob.objects.create(file_format="jsonl")
    job = exports.export_job_run(job.pk)
    assert job.status == JobStatus.FAILED and job.error


FORMULA_VALUES = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "a\rb", "a\nb", 'a"b']


def test_csv_neutralises_formulas_and_quotes_line_breaks_in_both_engines(admin_user):
    """Issue 14 point 7: each hostile id and tag is one row, with a ' before formula-leading cells, and the
    two engines write the same bytes (one tag per product: no order to differ)."""
    for index, value in enumerate(FORMULA_VALUES):
        # Tag names refuse control characters; the formula leaders and quotes are allowed in them.
        name = value if not any(ch in value for ch in "\t\r\n") else f"tag {index}"
        tag = tag_create(name=name)
        approve(product=ProductFactory(external_id=value), tag=tag, approved_by=admin_user)
    fast = run("csv", "copy")[1]
    portable = run("csv", "python")[1]
    assert fast == portable
    rows = list(csv.reader(io.StringIO(fast.decode(), newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    body = rows[1:]
    assert len(body) == len(FORMULA_VALUES)
    ids = {row[1] for row in body}
    expected_ids = {("'" + v) if v[0] in "=+-@\t\r" else v for v in FORMULA_VALUES}
    assert ids == expected_ids
    tags = {row[2] for row in body}
    assert {'\'=HYPERLINK("x")', "'+1", "'-2", "'@SUM(A1)", 'a"b'} <= tags
    for row in body:
        assert len(row) == len(CSV_COLUMNS)
        for cell in row:
            assert not cell or cell[0] not in "=+-@\t\r", cell
