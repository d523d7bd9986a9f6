"""Writers of the approved-tags export: JSON Lines, CSV and JSON, streamed in chunks (constant memory).

The formats (documented for consumers; version ``tagstudio.approved-tags.v1``):

JSON Lines (``application/x-ndjson``), one JSON object per line, three record types in this order:
  {"type": "deleted_tag", "name", "path", "reason": "deactivated"|"merged", "replaced_by", "changed_at"}
      tags that consumers must remove from every product (deactivated, or merged into ``replaced_by``);
  {"type": "product", "external_id", "updated_at", "tags_updated_at",
   "tags": [{"name", "path", "source", "approved_by", "model_version", "approved_at"}]}
      a product's complete set of active approved tags under their canonical names; ``path`` is the
      hierarchy path, root first; ``source`` is who/what approved it (review, import, bulk, hierarchy,
      merge), ``approved_by`` the username (null for imports), ``model_version`` the model whose suggestion
      was accepted. Consumers replace the product's tags with this list (it can be empty in an
      incremental export: the product's last tag went away);
  {"type": "end", "high_water_mark", "updated_since", "products", "deleted_tags"}
      the last line: pass ``high_water_mark`` as ``updated_since`` next time. A stream without it was cut.
JSON (``application/json``): one object
  {"format", "high_water_mark", "updated_since", "deleted_tags": [...], "products": [...], "product_count"}
  with the same deleted-tag and product records.
CSV (``text/csv``, header row, one row per product and tag):
  record,external_id,tag,tag_path,source,approved_by,model_version,approved_at,product_updated_at,
  tags_updated_at,replaced_by — ``record`` is ``tag``, ``no_tags`` (the product has no active tag any more)
  or ``deleted_tag`` (the deletion flag: remove ``tag`` everywhere, replaced by ``replaced_by`` if set);
  ``tag_path`` joins the path with " > ". A field starting with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return is written with a ``'`` in front so spreadsheets do not run it as a formula (strip one
  leading ``'`` from such a field to get the value back); fields holding a comma, a quote, a line feed or a
  carriage return are quoted (see ``csv_field``). The high-water mark travels in the ``X-High-Water-Mark`` header
  (and in the export job / command output).
Timestamps are ISO-8601 in UTC: ``2026-01-31T12:00:00.123456+00:00`` (fraction without trailing zeros).
A product's tags come in no particular order.

Records come in already rendered, one per product (for CSV: that product's lines): from PostgreSQL's COPY
on the fast path (annotation.selectors.exports renders the same bytes in SQL) or from ``render`` below.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

FORMAT_VERSION = "tagstudio.approved-tags.v1"
EXPORT_FORMATS = ("jsonl", "csv", "json")
CSV_COLUMNS = (
    "record",
    "external_id",
    "tag",
    "tag_path",
    "source",
    "approved_by",
    "model_version",
    "approved_at",
    "product_updated_at",
    "tags_updated_at",
    "replaced_by",
)
PATH_SEPARATOR = " > "
CHUNK_BYTES = 64 * 1024


def format_timestamp(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC, the one timestamp format of every export: ``2026-01-31T12:00:00.25+00:00``.

    It is PostgreSQL's JSON rendering of a timestamptz in a UTC session (fraction without trailing
    zeros, none when whole seconds), so the COPY engine and this module write the same text.
    """
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def tag_head(name: str, path: list[str]) -> str:
    """The start of a tag's JSON record, up to the opening quote of ``source`` (the COPY engine appends
    the per-approval fields in SQL; the Python engine renders whole records with the same key order)."""
    return '{"name":' + _json(name).decode() + ',"path":' + _json(path).decode() + ',"source":"'


@dataclass(frozen=True, slots=True)
class ExportMeta:
    high_water_mark: dt.datetime
    updated_since: dt.datetime | None
    deleted_tags: tuple[dict[str, Any], ...]


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# Cells a spreadsheet would read as a formula (OWASP "CSV injection"): a field starting with one of these
# gets a leading single quote, which spreadsheets show as text and which no consumer mistakes for data.
CSV_FORMULA_LEADERS = frozenset("=+-@\t\r")
# A field holding one of these is quoted (a bare carriage return too: Python's csv reader, and spreadsheets,
# would otherwise end the row there).
CSV_QUOTE_TRIGGERS = frozenset(',"\n\r')


def csv_field(value: Any) -> str:
    """One CSV field of the export: the one rule both engines follow.

    1. Formula neutralisation: text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
       gets a ``'`` in front (``=SUM(A1)`` -> ``'=SUM(A1)``), so no spreadsheet evaluates it.
    2. Quoting: text holding a comma, a double quote, a line feed or a carriage return is wrapped in double
       quotes with its quotes doubled (what Python's csv module writes with QUOTE_MINIMAL).
    The COPY engine (annotation.selectors.exports, ``_csv_field_sql``) applies the same two steps in SQL to
    the external id; every other field it writes comes from this function."""
    text = "" if value is None else str(value)
    if text and text[0] in CSV_FORMULA_LEADERS:
        text = "'" + text
    if any(ch in CSV_QUOTE_TRIGGERS for ch in text):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(values: Iterable[Any]) -> str:
    return ",".join(csv_field(value) for value in values)


class ExportWriter:
    name: str
    extension: str
    content_type: str
    # JSON arrays put a comma between records; line formats end each record with a newline.
    separator: bytes | None = None

    def head(self, meta: ExportMeta) -> bytes:
        raise NotImplementedError

    def render(self, record: dict[str, Any]) -> bytes:
        """A product record (see the module docstring) as body bytes, without the final newline."""
        raise NotImplementedError

    def tail(self, meta: ExportMeta, rows: int) -> bytes:
        raise NotImplementedError


class JsonLinesWriter(ExportWriter):
    name, extension, content_type = "jsonl", "jsonl", "application/x-ndjson"

    def head(self, meta: ExportMeta) -> bytes:
        return b"".join(_json({"type": "deleted_tag", **tag}) + b"\n" for tag in meta.deleted_tags)

    def render(self, record: dict[str, Any]) -> bytes:
        return _json({"type": "product", **record})

    def tail(self, meta: ExportMeta, rows: int) -> bytes:
        end = {
            "type": "end",
            "high_water_mark": format_timestamp(meta.high_water_mark),
            "updated_since": format_timestamp(meta.updated_since),
            "products": rows,
            "deleted_tags": len(meta.deleted_tags),
        }
        return _json(end) + b"\n"


class JsonWriter(JsonLinesWriter):
    name, extension, content_type = "json", "json", "application/json"
    separator = b",\n"

    def head(self, meta: ExportMeta) -> bytes:
        envelope = {
            "format": FORMAT_VERSION,
            "high_water_mark": format_timestamp(meta.high_water_mark),
            "updated_since": format_timestamp(meta.updated_since),
            "deleted_tags": [{"type": "deleted_tag", **tag} for tag in meta.deleted_tags],
        }
        return _json(envelope)[:-1] + b',"products":[\n'

    def tail(self, meta: ExportMeta, rows: int) -> bytes:
        return b'\n],"product_count":' + str(rows).encode() + b"}\n"


class CsvWriter(ExportWriter):
    name, extension, content_type = "csv", "csv", "text/csv; charset=utf-8"

    def head(self, meta: ExportMeta) -> bytes:
        lines = [csv_line(CSV_COLUMNS)]
        for tag in meta.deleted_tags:
            path = PATH_SEPARATOR.join(tag["path"])
            lines.append(csv_line(["deleted_tag", None, tag["name"], path, *[None] * 6, tag["replaced_by"]]))
        return "".join(line + "\n" for line in lines).encode()

    def render(self, record: dict[str, Any]) -> bytes:
        external_id, updated, tags_updated = (
            record["external_id"],
            record["updated_at"],
            record["tags_updated_at"],
        )
        if not record["tags"]:
            return csv_line(["no_tags", external_id, *[None] * 6, updated, tags_updated, None]).encode()
        return "\n".join(
            csv_line(
                [
                    "tag",
                    external_id,
                    tag["name"],
                    PATH_SEPARATOR.join(tag["path"]),
                    tag["source"],
                    tag["approved_by"],
                    tag["model_version"],
                    tag["approved_at"],
                    updated,
                    tags_updated,
                    None,
                ]
            )
            for tag in record["tags"]
        ).encode()

    def tail(self, meta: ExportMeta, rows: int) -> bytes:
        return b""


WRITERS: dict[str, ExportWriter] = {w.name: w for w in (JsonLinesWriter(), CsvWriter(), JsonWriter())}


class RowCounter:
    """How many body rows a stream has produced so far (read by progress bars and job records)."""

    def __init__(self) -> None:
        self.rows = 0


def frame(
    writer: ExportWriter,
    meta: ExportMeta,
    rows: Iterable[bytes],
    counter: RowCounter,
    *,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """Head, product records and tail as chunks of about ``chunk_bytes``: the stream never holds more."""
    yield writer.head(meta)
    separator = writer.separator
    buffer: list[bytes] = []
    size = 0
    count = 0
    for row in rows:
        if separator is None:
            buffer.append(row)
            buffer.append(b"\n")
        else:
            if count:
                buffer.append(separator)
            buffer.append(row)
        size += len(row)
        count += 1
        if size >= chunk_bytes:
            yield b"".join(buffer)
            buffer.clear()
            size = 0
            counter.rows = count
    if buffer:
        yield b"".join(buffer)
    counter.rows = count
    yield writer.tail(meta, count)
