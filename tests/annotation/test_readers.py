"""Catalog readers: every bad input is named by line, field and reason; good rows come through intact."""

from __future__ import annotations

import io
import re
from pathlib import Path

import orjson
import pytest

from annotation.io import readers
from annotation.io.readers import (
    CsvReader,
    FileFormatError,
    JsonlReader,
    ProductRow,
    RowError,
    detect_format,
    validate_row,
    validate_row_in_full,
)
from tests.conftest import shared_data_dir


def jsonl_rows(data: bytes, **options) -> list:
    return list(JsonlReader(io.BytesIO(data), **options).rows())


def csv_rows(text: str | bytes, **options) -> list:
    data = text.encode() if isinstance(text, str) else text
    return list(CsvReader(io.BytesIO(data), **options).rows())


def errors_of(result) -> list[tuple[int, str, str]]:
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return [(error.line, error.field, error.reason) for error in result]


def test_valid_row_is_cleaned_and_kept_whole():
    row = validate_row(
        {
            "id": " sku-1 ",
            "title": "  Red Shirt ",
            "description": "Cotton",
            "brand": "Acme",
            "category_path": ["Apparel", " Tops ", ""],
            "tags": ["Red", "T-Shirt"],
            "lang": "en",
            "source": "provenance, not an attribute",
            "colour": "red",
        },
        7,
    )
    assert isinstance(row, ProductRow)
    assert (row.line, row.external_id, row.title, row.brand) == (7, "sku-1", "Red Shirt", "Acme")
    assert row.category_path == ["Apparel", "Tops"]
    assert row.tags == ["Red", "T-Shirt"]
    assert row.attributes == {"colour": "red"}  # unknown columns are free attributes; `source` is dropped


def test_integer_id_is_accepted_as_text_but_other_types_are_not():
    assert validate_row({"id": 12345, "title": "x"}, 1).external_id == "12345"
    assert errors_of(validate_row({"id": 1.5, "title": "x"}, 1)) == [
        (1, "id", "must be a string or an integer, got number")
    ]
    assert errors_of(validate_row({"id": True, "title": "x"}, 1)) == [
        (1, "id", "must be a string or an integer, got boolean")
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("title", 42, "must be a string, got number"),
        ("title", ["a"], "must be a string, got array"),
        ("description", {"a": 1}, "must be a string, got object"),
        ("brand", 3, "must be a string, got number"),
        ("lang", False, "must be a string, got boolean"),
        ("category_path", "a > b", "must be an array of strings, got string"),
        ("category_path", ["a", 2], "item 1 must be a string, got number"),
        ("tags", "red", "must be an array of strings, got string"),
        ("tags", ["red", None], "item 1 must be a string, got null"),
        ("attributes", [1, 2], "must be an object, got array"),
        ("image_url", "ftp://example.com/x.png", "must be an http(s) URL"),
    ],
)
def test_wrong_types_are_rejected_with_field_and_reason(field, value, reason):
    assert errors_of(validate_row({"id": "a", "title": "t", field: value}, 3)) == [(3, field, reason)]


def test_missing_and_empty_required_fields():
    assert errors_of(validate_row({"title": "t"}, 2)) == [(2, "id", "is required")]
    assert errors_of(validate_row({"id": "a"}, 2)) == [(2, "title", "is required")]
    assert errors_of(validate_row({"id": "a", "title": "   "}, 2)) == [(2, "title", "must not be empty")]
    assert errors_of(validate_row({"id": "", "title": None}, 2)) == [
        (2, "id", "must not be empty"),
        (2, "title", "is required"),
    ]


def test_over_long_fields_are_rejected_not_truncated():
    result = validate_row(
        {
            "id": "x" * 256,
            "title": "t" * 1001,
            "brand": "b" * 256,
            "description": "d" * 20001,
            "lang": "l" * 17,
        },
        5,
    )
    assert errors_of(result) == [
        (5, "id", "is 256 characters long (at most 255)"),
        (5, "title", "is 1001 characters long (at most 1000)"),
        (5, "description", "is 20001 characters long (at most 20000)"),
        (5, "brand", "is 256 characters long (at most 255)"),
        (5, "lang", "is 17 characters long (at most 16)"),
    ]
    long_tag = validate_row({"id": "a", "title": "t", "tags": ["x" * 201]}, 1)
    assert errors_of(long_tag) == [(1, "tags", "item 0: tag name is longer than 200 characters")]
    deep = validate_row({"id": "a", "title": "t", "category_path": [str(i) for i in range(21)]}, 1)
    assert errors_of(deep) == [(1, "category_path", "has 21 levels (at most 20)")]
    big = validate_row({"id": "a", "title": "t", "attributes": {"k": "v" * 20000}}, 1)
    assert errors_of(big)[0][:2] == (1, "attributes")


def test_values_postgres_cannot_store_are_rejected():
    assert errors_of(validate_row({"id": "a", "title": "bad\x00title"}, 1)) == [
        (1, "title", "contains a NUL character")
    ]
    assert errors_of(validate_row({"id": "a", "title": "t", "attributes": {"k": "\x00"}}, 1)) == [
        (1, "attributes", "contains a NUL character")
    ]
    assert errors_of(validate_row({"id": "a", "title": "t", "tags": ["ok", "bell\x07"]}, 1))[0][:2] == (
        1,
        "tags",
    )


def test_every_problem_of_a_row_is_reported():
    result = validate_row({"id": None, "title": 5, "tags": "x"}, 9)
    assert [field for _, field, _ in errors_of(result)] == ["id", "title", "tags"]


def test_jsonl_line_numbers_malformed_json_and_invalid_utf8():
    data = b"".join(
        [
            b'{"id": "a", "title": "fine"}\n',
            b"\n",  # blank lines are skipped but counted
            b'{"id": "b", "title": "broken"\n',
            b'{"id": "c", "title": "caf\xe9 in latin-1"}\n',
            b'["not", "an", "object"]\n',
            b'{"id": "d", "title": "\\ud800 lone surrogate"}\n',
            b'{"id": "e", "title": "last"}',  # no final newline
        ]
    )
    results = jsonl_rows(data)
    assert [r.external_id for r in results if isinstance(r, ProductRow)] == ["a", "e"]
    problems = [errors_of(r)[0] for r in results if isinstance(r, list)]
    assert [(line, field) for line, field, _ in problems] == [
        (3, "(line)"),
        (4, "(line)"),
        (5, "(row)"),
        (6, "(line)"),
    ]
    assert problems[0][2].startswith("malformed JSON")
    assert problems[1][2] == "invalid UTF-8 at byte 26"
    assert problems[2][2] == "must be a JSON object, got array"
    assert problems[3][2].startswith("malformed JSON")


def test_jsonl_over_long_line_is_rejected_without_reading_it_whole(monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 100)
    data = b'{"id": "a", "title": "' + b"x" * 500 + b'"}\n{"id": "b", "title": "next"}\n'
    results = jsonl_rows(data)
    assert errors_of(results[0]) == [(1, "(line)", "is longer than 100 bytes")]
    assert results[1].external_id == "b" and results[1].line == 2


def test_jsonl_bom_and_chinese():
    data = '\ufeff{"id": "zh-1", "title": "北京搬家公司", "tags": ["品类:搬家"], "lang": "zh"}\n'.encode()
    (row,) = jsonl_rows(data)
    assert (row.external_id, row.title, row.tags, row.lang) == ("zh-1", "北京搬家公司", ["品类:搬家"], "zh")


def test_ignore_tags_leaves_the_tags_field_unread():
    data = b'{"id": "a", "title": "t", "tags": "not a list"}\n'
    assert isinstance(jsonl_rows(data)[0], list)
    (row,) = jsonl_rows(data, read_tags=False)
    assert row.tags is None


def test_csv_lists_attributes_and_extra_columns():
    text = (
        "\ufeffid,title,tags,category_path,attributes,colour\n"
        'sku-1,"Shirt, red",Red|T-Shirt| ,Apparel > Tops,"{""size"": ""M""}",red\n'
        "sku-2,女士连衣裙,品类:连衣裙,,,\n"
    )
    first, second = csv_rows(text)
    assert (first.external_id, first.title, first.tags, first.category_path) == (
        "sku-1",
        "Shirt, red",
        ["Red", "T-Shirt"],
        ["Apparel", "Tops"],
    )
    assert first.attributes == {"colour": "red", "size": "M"}
    assert (second.title, second.tags, second.category_path, second.attributes) == (
        "女士连衣裙",
        ["品类:连衣裙"],
        [],
        {},
    )


def test_csv_bad_rows_name_line_and_field():
    text = (
        b"id,title,description,attributes\n"
        b"a,ok,,\n"
        b"b,too,many,,columns\n"
        b"c,bad \xff byte,,\n"
        b'd,multi\n,"line ""quoted""",\n'  # a quoted newline inside the row is fine: next row is line 7
        b"e,,,\n"
        b"f,t,,{not json}\n"
    )
    results = csv_rows(text)
    assert [r.external_id for r in results if isinstance(r, ProductRow)] == ["a"]
    problems = [errors_of(r) for r in results if isinstance(r, list)]
    assert problems[0] == [(3, "(row)", "has 5 columns, the header has 4")]
    assert problems[1] == [(4, "title", "invalid UTF-8")]
    assert problems[2] == [(5, "(row)", "has 2 columns, the header has 4")]
    assert problems[3][0][:2] == (6, "(row)")
    assert problems[4] == [(7, "title", "must not be empty")]
    assert problems[5][0][:2] == (8, "attributes")


def test_csv_quoted_newline_keeps_its_record_whole():
    (row,) = csv_rows('id,title,description\nsku,"Title","two\nlines"\n')
    assert row.description == "two\nlines"


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_detect_format_accepts_catalogs(tmp_path):
    assert detect_format(write(tmp_path, "a.jsonl", '{"id": "a", "title": "t"}\n')) == "jsonl"
    assert detect_format(write(tmp_path, "a.csv", "id,title\na,t\n")) == "csv"
    assert detect_format(write(tmp_path, "catalog.txt", "\ufeffID, Title ,brand\na,t,b\n")) == "csv"
    assert detect_format(write(tmp_path, "noext", '{"id": 1, "title": "t"}\n')) == "jsonl"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.jsonl", b"  \n", "is empty"),
        ("image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
        ("latin.csv", b"id,title\n" + bytes(range(128, 256)) * 40, "binary file"),
        ("array.json", b'[{"id": "a", "title": "t"}]', "JSON array, not JSONL"),
        ("noheader.csv", b"sku-1,Red shirt,Acme\nsku-2,Blue shirt,Acme\n", "lacks the column(s) id, title"),
        ("notitle.csv", b"id,name\na,b\n", "lacks the column(s) title"),
        ("twice.csv", b"id,title,title\na,b,c\n", "repeats the column(s) title"),
        ("readme.md", b"# A README\n\nNot a catalog at all.\n", "does not look like"),
    ],
)
def test_detect_format_refuses_what_is_not_a_catalog(tmp_path, name, data, message):
    with pytest.raises(FileFormatError, match=re.escape(message)):
        detect_format(write(tmp_path, name, data))


def test_content_hash_follows_the_content_not_the_layout():
    base = validate_row({"id": "a", "title": "t", "attributes": {"x": 1, "y": 2}}, 1)
    same = validate_row({"id": "a", "title": " t ", "attributes": {"y": 2, "x": 1}, "tags": ["z"]}, 9)
    changed = validate_row({"id": "a", "title": "t2", "attributes": {"x": 1, "y": 2}}, 1)
    assert base.content_hash == same.content_hash != changed.content_hash
    assert len(base.content_hash) == 64


def test_row_error_reads_as_line_field_reason():
    assert str(RowError(12, "title", "is required")) == "line 12: title: is required"
    assert RowError(12, "title", "is required").as_dict() == {
        "line": 12,
        "field": "title",
        "reason": "is required",
    }


def _variants(record: dict) -> list[dict]:
    """The record and edits of it that the quick check must hand over to the full one (or agree on)."""
    return [
        record,
        {**record, "id": 123},
        {**record, "title": "  " + str(record.get("title")) + "  "},
        {**record, "title": 7},
        {**record, "brand": None, "description": None, "lang": None},
        {**record, "category_path": ["", " A ", "B"]},
        {**record, "category_path": "A > B"},
        {**record, "tags": ["", "  ", "Fresh-Tag"]},
        {**record, "tags": None},
        {**record, "tags": [1]},
        {**record, "colour": "red"},
        {**record, "attributes": {"k": "v"}},
        {**record, "image_url": "https://example.com/a.png"},
        {**record, "image_url": "file:///etc/passwd"},
        {**record, "description": "x" * 20001},
        {**record, "brand": "nul\x00"},
    ]


def test_the_quick_common_path_agrees_with_the_full_check():
    records = []
    for path in sorted(shared_data_dir().glob("*/dev.jsonl"))[:7]:
        with path.open("rb") as stream:
            records.extend(orjson.loads(line) for _, line in zip(range(40), stream))
    assert (
        len(records) == 7 * 40
    )  # real rows of every set (English and Chinese), from ../shared/data or the sample
    for number, record in enumerate(records):
        for variant in _variants(record):
            for read_tags in (True, False):
                full = validate_row_in_full(variant, number, read_tags=read_tags)
                assert validate_row(variant, number, read_tags=read_tags) == full, variant
                # Once a tag name has been seen, the quick path takes the row: still the same result.
                assert validate_row(variant, number, read_tags=read_tags) == full, variant
    # The quick path did take the plain rows (else this test would compare the full check with itself).
    assert sum(readers._common_row(record, 1, True) is not None for record in records) >= len(records) // 2


# --- issue 14: ids the API cannot address, CR-only files, GBK files, the uploaded file's name ---------------


@pytest.mark.parametrize("bad_id", ["a\nb", "a\rb", "a\tb", "a\x1fb", "a\x7fb", "a\x85b"])
def test_control_characters_in_ids_are_refused_in_jsonl_and_csv(bad_id):
    jsonl = orjson.dumps({"id": bad_id, "title": "t"}) + b"\n" + b'{"id": "ok", "title": "t"}\n'
    results = jsonl_rows(jsonl)
    ((line, field, reason),) = errors_of(results[0])
    assert (line, field) == (1, "id")
    assert f"control character U+{ord(bad_id[1]):04X} at position 2" in reason
    assert results[1].external_id == "ok"
    quoted = '"' + bad_id + '"'
    results = csv_rows(f"id,title\n{quoted},t\nok,t\n")
    ((line, field, reason),) = errors_of(results[0])
    assert (line, field) == (2, "id") and "control character" in reason
    assert results[1].external_id == "ok"


def test_cr_only_line_endings_are_read_as_lines():
    records = [{"id": f"p{n}", "title": f"Title {n}"} for n in range(5)]
    jsonl = b"\r".join(orjson.dumps(record) for record in records) + b"\r"
    results = jsonl_rows(jsonl)
    assert [(r.line, r.external_id) for r in results] == [(n + 1, f"p{n}") for n in range(5)]
    csv_text = "id,title\r" + "".join(f"p{n},Title {n}\r" for n in range(5))
    results = csv_rows(csv_text)
    assert [(r.line, r.external_id, r.title) for r in results] == [
        (n + 2, f"p{n}", f"Title {n}") for n in range(5)
    ]


def test_cr_only_jsonl_file_and_csv_file_are_detected(tmp_path):
    assert detect_format(write(tmp_path, "mac.csv", b"id,title\ra,t\rb,u\r")) == "csv"
    assert (
        detect_format(write(tmp_path, "mac.jsonl", b'{"id":"a","title":"t"}\r{"id":"b","title":"u"}\r'))
        == "jsonl"
    )


def test_cr_only_over_long_line_is_skipped(monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 100)
    data = b'{"id": "a", "title": "' + b"x" * 500 + b'"}\r{"id": "b", "title": "next"}\r'
    for chunk_bytes in (64, 64 * 1024):  # the long line cut across reads, or within one read
        monkeypatch.setattr(readers, "_CR_CHUNK_BYTES", chunk_bytes)
        results = jsonl_rows(data)
        assert errors_of(results[0]) == [(1, "(line)", "is longer than 100 bytes")]
        assert results[1].external_id == "b" and results[1].line == 2 and len(results) == 2


GBK_CSV = "id,title,tags\nzh-1,北京搬家公司,品类:搬家|服务\nzh-2,上海家政服务,品类:家政\n".encode("gbk")


def test_gbk_csv_is_detected_and_decoded(tmp_path):
    assert readers.detect_encoding(GBK_CSV) == "gb18030"
    assert detect_format(write(tmp_path, "gbk.csv", GBK_CSV)) == "csv"
    rows = csv_rows(GBK_CSV)
    assert [(r.external_id, r.title, r.tags) for r in rows] == [
        ("zh-1", "北京搬家公司", ["品类:搬家", "服务"]),
        ("zh-2", "上海家政服务", ["品类:家政"]),
    ]


def test_gbk_jsonl_is_decoded():
    data = '{"id": "zh-1", "title": "北京搬家公司"}\n'.encode("gbk")
    (row,) = jsonl_rows(data)
    assert row.title == "北京搬家公司"


def test_latin1_is_never_read_as_gb18030(tmp_path):
    """Latin-1 accents before ASCII letters decode as GB18030 pairs: the detection must not take them."""
    latin = "id,title\np1,Détail café crème\np2,Ästhetik für Übermut\np3,Æble\n".encode("latin-1")
    assert readers.detect_encoding(latin) == "utf-8"
    latin_pairs = "id,title\np1,détail\np2,élan\n".encode("latin-1")
    assert latin_pairs.decode("gb18030")  # decodes "cleanly", as Chinese nonsense
    assert readers.detect_encoding(latin_pairs) == "utf-8"
    rows = csv_rows(latin_pairs)
    assert all(isinstance(r, list) and errors_of(r)[0][2] == "invalid UTF-8" for r in rows)


def test_messages_name_the_uploaded_file_not_the_stored_copy(tmp_path):
    stored = write(tmp_path, "4f1c2a.dat", b"# A README\n\nNot a catalog.\n")
    with pytest.raises(FileFormatError, match=r"^my catalog\.csv does not look like CSV"):
        detect_format(stored, display_name="my catalog.csv")
