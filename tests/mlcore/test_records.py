from __future__ import annotations

import json

import pytest

from mlcore.records import RecordError, read_jsonl, record_from_dict, write_jsonl
from tests.mlcore.conftest import EN_TOYS, ZH_TITLES


def test_reads_real_samples_in_both_languages():
    en = list(read_jsonl(EN_TOYS))
    zh = list(read_jsonl(ZH_TITLES))
    assert len(en) == 300 and len(zh) == 300
    assert all(r.tags for r in en + zh)
    assert en[0].category_path is not None and isinstance(en[0].category_path, tuple)
    assert any(r.lang == "zh" for r in zh)


def _write(tmp_path, lines: list[str | bytes]):
    path = tmp_path / "in.jsonl"
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else line.encode("utf-8"))
            fh.write(b"\n")
    return path


def test_malformed_json_names_the_line(tmp_path):
    path = _write(tmp_path, ['{"id": "a", "title": "Red mug", "tags": ["mug"]}', "", '{"id": "b", "title": '])
    with pytest.raises(RecordError) as err:
        list(read_jsonl(path))
    assert err.value.line == 3
    assert "line 3" in str(err.value) and "malformed JSON" in str(err.value)


@pytest.mark.parametrize(
    ("obj", "field", "reason"),
    [
        ({"title": "x"}, "id", "missing"),
        ({"id": "  ", "title": "x"}, "id", "empty"),
        ({"id": "a"}, "title", "missing"),
        ({"id": "a", "title": "   "}, "title", "empty"),
        ({"id": "a", "title": "x", "tags": "mug"}, "tags", "list"),
        ({"id": "a", "title": "x", "tags": ["ok", 3]}, "tags[1]", "string"),
        ({"id": "a", "title": "x", "brand": 5}, "brand", "string"),
        ({"id": "a", "title": "x", "category_path": "a > b"}, "category_path", "list"),
        ({"id": "a", "title": "x", "description": ["x"]}, "description", "string"),
    ],
)
def test_schema_errors_name_the_field(tmp_path, obj, field, reason):
    path = _write(tmp_path, [json.dumps({"id": "ok", "title": "fine"}), json.dumps(obj)])
    with pytest.raises(RecordError) as err:
        list(read_jsonl(path))
    assert err.value.line == 2
    assert err.value.field == field
    assert reason in err.value.reason
    assert f"field {field!r}" in str(err.value)


def test_invalid_utf8_and_duplicate_ids(tmp_path):
    path = _write(tmp_path, [b'{"id": "a", "title": "caf\xe9"}'])
    with pytest.raises(RecordError, match="line 1: invalid UTF-8"):
        list(read_jsonl(path))
    path = _write(tmp_path, ['{"id": "a", "title": "x"}', '{"id": "a", "title": "y"}'])
    with pytest.raises(RecordError, match="duplicate id"):
        list(read_jsonl(path))


def test_record_from_dict_normalises_tags_and_ids():
    r = record_from_dict(
        {"id": 7, "title": "Mug", "tags": ["mug", " mug ", "kitchen", ""], "description": None}
    )
    assert r.id == "7"
    assert r.tags == ("mug", "kitchen")
    assert r.description == ""


def test_write_then_read_round_trip(tmp_path):
    records = list(read_jsonl(ZH_TITLES))[:20]
    out = tmp_path / "sub" / "copy.jsonl"
    assert write_jsonl(out, records) == 20
    assert list(read_jsonl(out)) == records
