"""Catalog file readers: JSONL and CSV in, validated ``ProductRow`` or ``RowError`` out, streaming.

Formats sit behind a small registry (doccano's catalog pattern) so a new one is one class. Readers read
bytes and decode each record themselves, so invalid UTF-8 rejects one row instead of the whole file.
Validation is strict about types (a number is not a title) and lengths (what the columns hold), and
reports every problem of a row with its line number and field.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from annotation.taxonomy.names import TagNameError, clean_tag_display_name, normalize_tag_name

# Column sizes of annotation.models.Product (characters).
MAX_ID_LENGTH = 255
MAX_TITLE_LENGTH = 1000
MAX_DESCRIPTION_LENGTH = 20000
MAX_BRAND_LENGTH = 255
MAX_LANG_LENGTH = 16
MAX_IMAGE_URL_LENGTH = 2000
MAX_TAGS_PER_PRODUCT = 200
MAX_CATEGORY_DEPTH = 20
MAX_CATEGORY_NODE_LENGTH = 200
MAX_ATTRIBUTES_JSON_LENGTH = 20000
# A JSONL line longer than this cannot hold a valid row (the field limits above sum to far less);
# reading it whole would break the constant-memory promise on a file without newlines.
MAX_LINE_BYTES = 1 << 20
CSV_LIST_SEPARATOR = "|"
CSV_PATH_SEPARATOR = ">"
KNOWN_FIELDS = frozenset(
    {"id", "title", "description", "brand", "category_path", "tags", "lang", "image_url", "attributes"}
)
# Provenance columns of the shared catalogs: not product attributes, never shown to the tagger.
IGNORED_FIELDS = frozenset({"source"})
_NOT_ATTRIBUTES = KNOWN_FIELDS | IGNORED_FIELDS
_SNIFF_BYTES = 64 * 1024
# Control characters (Unicode Cc: C0, DEL, C1). An id holding one could be imported but never addressed
# through the API (issue 14): such ids are refused with the row's error.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
# The encodings a catalog may come in: UTF-8 (with or without BOM), or GB18030 (a superset of GBK and
# GB2312) when the file is not UTF-8 and reads as Chinese text (see ``detect_encoding``).
UTF8 = "utf-8"
GB18030 = "gb18030"


class FileFormatError(ValueError):
    """The file is not a catalog this importer reads: refused before anything is written."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    reason: str
    # A warning reports a row that was imported all the same (a repeated id); an error, one left out.
    warning: bool = False

    def as_dict(self) -> dict[str, Any]:
        problem = {"line": self.line, "field": self.field, "reason": self.reason}
        if self.warning:
            problem["warning"] = True
        return problem

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {'warning: ' if self.warning else ''}{self.reason}"


@dataclass(slots=True)
class ProductRow:
    line: int
    external_id: str
    title: str
    description: str = ""
    brand: str = ""
    category_path: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    lang: str = ""
    image_url: str = ""
    tags: list[str] | None = None  # None: the file says nothing about tags for this row

    @property
    def content_hash(self) -> str:
        """sha256 of what a tagger reads: an unchanged row is skipped on re-import, a changed one refreshed."""
        return hashlib.sha256(encoded_content(self)).hexdigest()


RowResult = ProductRow | list[RowError]

# PostgreSQL's COPY text format: the PostgreSQL import path writes rows in it, and the content hash is taken
# over it (one unambiguous serialisation: fields are tab-separated, tabs inside them escaped).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """A value in COPY text format (backslash escapes; validation has refused NUL characters)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def copy_json(value: list | dict) -> str:
    """A JSON value in COPY text format (keys sorted: the same content always encodes the same)."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    # JSON text has no raw tab or newline; only its backslashes need doubling.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode().replace("\\", "\\\\")


def encoded_content(row: ProductRow) -> bytes:
    """The row's content columns (title, description, brand, category_path, attributes, lang, image_url)
    as one COPY text fragment, UTF-8."""
    title, description, brand, lang, image_url = (
        row.title,
        row.description,
        row.brand,
        row.lang,
        row.image_url,
    )
    joined = title + description + brand + lang + image_url
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        title, description, brand, lang, image_url = map(
            copy_text, (title, description, brand, lang, image_url)
        )
    category_path = copy_json(row.category_path)
    attributes = copy_json(row.attributes)
    return f"{title}\t{description}\t{brand}\t{category_path}\t{attributes}\t{lang}\t{image_url}".encode()


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages a catalog author understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _text(value: Any, name: str, limit: int, line: int, errors: list[RowError]) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        errors.append(RowError(line, name, f"must be a string, got {json_type_name(value)}"))
        return ""
    text = value.strip()
    if len(text) > limit:
        errors.append(RowError(line, name, f"is {len(text)} characters long (at most {limit})"))
    if "\x00" in text:
        errors.append(RowError(line, name, "contains a NUL character"))
    return text


def _external_id(value: Any, line: int, errors: list[RowError]) -> str:
    # SKUs are often numbers in JSON exports: an integer id is accepted as its decimal text.
    if type(value) is int:
        return str(value)
    if value is None:
        errors.append(RowError(line, "id", "is required"))
        return ""
    if type(value) is not str:
        errors.append(RowError(line, "id", f"must be a string or an integer, got {json_type_name(value)}"))
        return ""
    text = _text(value, "id", MAX_ID_LENGTH, line, errors)
    if not text:
        errors.append(RowError(line, "id", "must not be empty"))
    # A NUL is reported by _text already: name the first other control character.
    control = next((m for m in _CONTROL_CHARACTERS.finditer(text) if m.group() != "\x00"), None)
    if control is not None:
        errors.append(
            RowError(
                line,
                "id",
                f"contains the control character U+{ord(control.group()):04X} at position "
                f"{control.start() + 1} (ids must be printable: the API addresses products by id)",
            )
        )
    return text


def _title(value: Any, line: int, errors: list[RowError]) -> str:
    if value is None:
        errors.append(RowError(line, "title", "is required"))
        return ""
    text = _text(value, "title", MAX_TITLE_LENGTH, line, errors)
    if type(value) is str and not text:
        errors.append(RowError(line, "title", "must not be empty"))
    return text


def _category_path(value: Any, line: int, errors: list[RowError]) -> list[str]:
    if value is None:
        return []
    if type(value) is not list:
        errors.append(
            RowError(line, "category_path", f"must be an array of strings, got {json_type_name(value)}")
        )
        return []
    path: list[str] = []
    for index, node in enumerate(value):
        if type(node) is not str:
            errors.append(
                RowError(line, "category_path", f"item {index} must be a string, got {json_type_name(node)}")
            )
            return []
        node = node.strip()
        if not node:
            continue
        if len(node) > MAX_CATEGORY_NODE_LENGTH or "\x00" in node:
            reason = (
                "contains a NUL character"
                if "\x00" in node
                else f"is longer than {MAX_CATEGORY_NODE_LENGTH} characters"
            )
            errors.append(RowError(line, "category_path", f"item {index} {reason}"))
            return []
        path.append(node)
    if len(path) > MAX_CATEGORY_DEPTH:
        errors.append(
            RowError(line, "category_path", f"has {len(path)} levels (at most {MAX_CATEGORY_DEPTH})")
        )
        return []
    return path


# Tag name -> display name, for names already validated: a catalog repeats a few thousand names a
# million times, and this lookup is the whole per-tag cost on the common path.
_TAG_DISPLAY_NAMES: dict[str, str] = {}
_TAG_DISPLAY_NAMES_MAX = 1 << 16


def _tag_display_name(name: str) -> str:
    normalize_tag_name(name)  # the folding rule every entry point applies: refuses what cannot be a tag
    display = clean_tag_display_name(name)
    if len(_TAG_DISPLAY_NAMES) >= _TAG_DISPLAY_NAMES_MAX:
        _TAG_DISPLAY_NAMES.clear()
    _TAG_DISPLAY_NAMES[name] = display
    return display


def _tags(value: Any, line: int, errors: list[RowError]) -> list[str]:
    if value is None:
        return []
    if type(value) is not list:
        errors.append(RowError(line, "tags", f"must be an array of strings, got {json_type_name(value)}"))
        return []
    names: list[str] = []
    for index, name in enumerate(value):
        if type(name) is not str:
            errors.append(
                RowError(line, "tags", f"item {index} must be a string, got {json_type_name(name)}")
            )
            return []
        display = _TAG_DISPLAY_NAMES.get(name)
        if display is None:
            if not name or name.isspace():
                continue
            try:
                display = _tag_display_name(name)
            except TagNameError as exc:
                errors.append(RowError(line, "tags", f"item {index}: {exc}"))
                return []
        names.append(display)
    if len(names) > MAX_TAGS_PER_PRODUCT:
        errors.append(RowError(line, "tags", f"has {len(names)} items (at most {MAX_TAGS_PER_PRODUCT})"))
        return []
    return names


def _attributes(raw: dict[str, Any], line: int, errors: list[RowError]) -> dict[str, Any]:
    attributes = raw.get("attributes")
    if attributes is None:
        attributes = {}
    elif type(attributes) is not dict:
        errors.append(RowError(line, "attributes", f"must be an object, got {json_type_name(attributes)}"))
        return {}
    extra_keys = raw.keys() - _NOT_ATTRIBUTES
    if extra_keys:
        # Columns the schema does not name are kept as free attributes (explicit attributes win).
        extra = {key: raw[key] for key in sorted(extra_keys) if raw[key] not in (None, "")}
        attributes = {**extra, **attributes}
    if not attributes:
        return attributes
    try:
        encoded = orjson.dumps(attributes)
    except (TypeError, orjson.JSONEncodeError) as exc:
        errors.append(RowError(line, "attributes", f"cannot be stored as JSON: {exc}"))
        return {}
    if b"\\u0000" in encoded:
        errors.append(RowError(line, "attributes", "contains a NUL character"))
    elif len(encoded) > MAX_ATTRIBUTES_JSON_LENGTH:
        errors.append(
            RowError(
                line,
                "attributes",
                f"is {len(encoded)} bytes as JSON (at most {MAX_ATTRIBUTES_JSON_LENGTH:,})",
            )
        )
    return attributes


def validate_row(raw: Any, line: int, *, read_tags: bool = True) -> RowResult:
    """Check one decoded record against the catalog schema; every problem is reported, not just the first.

    ``read_tags=False`` (``--ignore-tags``) leaves the tags field unread: the products load alone.
    """
    if type(raw) is dict:
        row = _common_row(raw, line, read_tags)
        if row is not None:
            return row
    return validate_row_in_full(raw, line, read_tags=read_tags)


def _plain_text(value: Any, limit: int) -> str | None:
    """The stripped text if ``value`` is an acceptable string (or absent), else None."""
    if value is None:
        return ""
    if type(value) is not str:
        return None
    text = value.strip()
    if len(text) > limit or "\x00" in text:
        return None
    return text


def _common_row(raw: dict[str, Any], line: int, read_tags: bool) -> ProductRow | None:
    """The common case, checked with as little work as possible: a row of the schema's own fields whose
    values are all acceptable. Returns None for anything else, which ``validate_row_in_full`` then checks
    and explains; for the rows it accepts, it builds exactly what that function builds (a test holds it
    to that). A million-row import spends most of its parsing time here."""
    get = raw.get
    external_id = get("id")
    title = get("title")
    if type(external_id) is not str or type(title) is not str:
        return None
    external_id = external_id.strip()
    title = title.strip()
    if (
        not external_id
        or not title
        or len(external_id) > MAX_ID_LENGTH
        or len(title) > MAX_TITLE_LENGTH
        or _CONTROL_CHARACTERS.search(external_id) is not None
        or "\x00" in title
    ):
        return None
    description = _plain_text(get("description"), MAX_DESCRIPTION_LENGTH)
    brand = _plain_text(get("brand"), MAX_BRAND_LENGTH)
    lang = _plain_text(get("lang"), MAX_LANG_LENGTH)
    image_url = _plain_text(get("image_url"), MAX_IMAGE_URL_LENGTH)
    if description is None or brand is None or lang is None or image_url is None:
        return None
    if image_url and not image_url.startswith(("http://", "https://")):
        return None
    if get("attributes") is not None or not raw.keys() <= _NOT_ATTRIBUTES:
        return None
    raw_path = get("category_path")
    category_path: list[str] = []
    if raw_path is not None:
        if type(raw_path) is not list or len(raw_path) > MAX_CATEGORY_DEPTH:
            return None
        for node in raw_path:
            if type(node) is not str:
                return None
            node = node.strip()
            if len(node) > MAX_CATEGORY_NODE_LENGTH or "\x00" in node:
                return None
            if node:
                category_path.append(node)
    tags: list[str] | None = None
    if read_tags and "tags" in raw:
        raw_tags = raw["tags"]
        tags = []
        if raw_tags is not None:
            if type(raw_tags) is not list or len(raw_tags) > MAX_TAGS_PER_PRODUCT:
                return None
            known = _TAG_DISPLAY_NAMES
            for name in raw_tags:
                display = known.get(name) if type(name) is str else None
                if display is None:
                    return None  # a name not seen yet (or not a string): checked in full
                tags.append(display)
    return ProductRow(
        line=line,
        external_id=external_id,
        title=title,
        description=description,
        brand=brand,
        category_path=category_path,
        attributes={},
        lang=lang,
        image_url=image_url,
        tags=tags,
    )


def validate_row_in_full(raw: Any, line: int, *, read_tags: bool = True) -> RowResult:
    """validate_row's complete check: every rule, every problem of the row with its field and reason."""
    if type(raw) is not dict:
        return [RowError(line, "(row)", f"must be a JSON object, got {json_type_name(raw)}")]
    errors: list[RowError] = []
    external_id = _external_id(raw.get("id"), line, errors)
    title = _title(raw.get("title"), line, errors)
    description = _text(raw.get("description"), "description", MAX_DESCRIPTION_LENGTH, line, errors)
    brand = _text(raw.get("brand"), "brand", MAX_BRAND_LENGTH, line, errors)
    lang = _text(raw.get("lang"), "lang", MAX_LANG_LENGTH, line, errors)
    image_url = _text(raw.get("image_url"), "image_url", MAX_IMAGE_URL_LENGTH, line, errors)
    if image_url and not image_url.startswith(("http://", "https://")):
        errors.append(RowError(line, "image_url", "must be an http(s) URL"))
    category_path = _category_path(raw.get("category_path"), line, errors)
    tags = _tags(raw["tags"], line, errors) if read_tags and "tags" in raw else None
    attributes = _attributes(raw, line, errors)
    if errors:
        return errors
    return ProductRow(
        line=line,
        external_id=external_id,
        title=title,
        description=description,
        brand=brand,
        category_path=category_path,
        attributes=attributes,
        lang=lang,
        image_url=image_url,
        tags=tags,
    )


class CatalogReader:
    """Base of the format registry: ``rows()`` yields one ProductRow or a list of RowErrors per record."""

    name: str = ""
    extensions: tuple[str, ...] = ()

    def __init__(self, stream: BinaryIO, *, read_tags: bool = True) -> None:
        self.stream = stream
        self.read_tags = read_tags
        # The encoding and the line endings are the file's, decided once from its first bytes.
        start = stream.tell()
        head = stream.read(_SNIFF_BYTES)
        stream.seek(start)
        self.encoding = detect_encoding(head)
        self.cr_only = cr_only_line_endings(head)

    def rows(self) -> Iterator[RowResult]:
        raise NotImplementedError

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """Whether the first bytes look like this format (cheap; decides which reader to use)."""
        raise NotImplementedError

    @classmethod
    def check_head(cls, head: bytes) -> None:
        """Refuse, with FileFormatError, a file of this format that cannot be imported at all."""


class JsonlReader(CatalogReader):
    """One JSON object per line (the schema of ../shared/data/*/dev.jsonl)."""

    name = "jsonl"
    extensions = (".jsonl", ".ndjson", ".json")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"{")

    def _lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes) per line; None for a line over MAX_LINE_BYTES, which is skipped unread."""
        if self.cr_only:
            yield from _cr_lines(self.stream)
            return
        readline = self.stream.readline
        line_no = 0
        while True:
            raw_line = readline(MAX_LINE_BYTES + 1)
            if not raw_line:
                return
            line_no += 1
            if len(raw_line) > MAX_LINE_BYTES and not raw_line.endswith(b"\n"):
                while raw_line and not raw_line.endswith(b"\n"):
                    raw_line = readline(MAX_LINE_BYTES)
                yield line_no, None
                continue
            yield line_no, raw_line

    def rows(self) -> Iterator[RowResult]:
        loads = orjson.loads
        for line_no, raw_line in self._lines():
            if raw_line is None:
                yield [RowError(line_no, "(line)", f"is longer than {MAX_LINE_BYTES:,} bytes")]
                continue
            if line_no == 1:
                raw_line = raw_line.removeprefix(codecs.BOM_UTF8)
            if self.encoding != UTF8:
                try:
                    raw_line = raw_line.decode(self.encoding).encode()
                except UnicodeDecodeError as decode_error:
                    reason = f"invalid {self.encoding.upper()} at byte {decode_error.start + 1}"
                    yield [RowError(line_no, "(line)", reason)]
                    continue
            try:
                record = loads(raw_line)
            except orjson.JSONDecodeError as exc:
                if not raw_line.strip():
                    continue
                yield [_line_error(line_no, raw_line, exc)]
                continue
            yield validate_row(record, line_no, read_tags=self.read_tags)


_CR_CHUNK_BYTES = 64 * 1024


def _cr_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Lines of a file whose lines end in a bare carriage return (classic Mac OS, some exporters), as
    JsonlReader._lines yields them: a raw carriage return cannot occur inside a JSON string."""
    line_no = 0
    pending = b""
    too_long = False
    while True:
        chunk = stream.read(_CR_CHUNK_BYTES)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\r")
        for line in lines:
            line_no += 1
            if too_long or len(line) > MAX_LINE_BYTES:
                too_long = False
                yield line_no, None
            else:
                yield line_no, line + b"\r"
        if len(pending) > MAX_LINE_BYTES:
            pending, too_long = b"", True  # skipped unread up to its end
    if pending or too_long:
        yield line_no + 1, None if too_long else pending


def _line_error(line_no: int, raw_line: bytes, exc: orjson.JSONDecodeError) -> RowError:
    try:
        raw_line.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        return RowError(line_no, "(line)", f"invalid UTF-8 at byte {decode_error.start + 1}")
    return RowError(line_no, "(line)", f"malformed JSON: {exc.msg} (column {exc.colno})")


class CsvReader(CatalogReader):
    """CSV with a header row; ``tags`` separated by ``|``, ``category_path`` by ``>`` (or ``|``);
    ``attributes`` may be a JSON object; any other column becomes an attribute."""

    name = "csv"
    extensions = (".csv",)
    required_columns = ("id", "title")

    @staticmethod
    def _header(head: bytes) -> list[str]:
        # The first line, whatever ends it (a bare carriage return too).
        first = re.split(rb"\r\n|\r|\n", head.removeprefix(codecs.BOM_UTF8), maxsplit=1)[0]
        try:
            row = next(csv.reader([first.decode(detect_encoding(head), "replace")]))
        except (csv.Error, StopIteration):
            return []
        return [name.strip().lower() for name in row]

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        header = cls._header(head)
        return len(header) > 1 or bool(header and header[0] in KNOWN_FIELDS)

    @classmethod
    def check_head(cls, head: bytes) -> None:
        cls._check_header(cls._header(head))

    @classmethod
    def _check_header(cls, header: list[str]) -> None:
        missing = [name for name in cls.required_columns if name not in header]
        if missing:
            raise FileFormatError(
                f"the CSV header row lacks the column(s) {', '.join(missing)} "
                f"(first row read as header: {', '.join(header)[:200]}); a header row naming at least "
                "id and title must come first"
            )
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise FileFormatError(f"the CSV header repeats the column(s) {', '.join(duplicates)}")

    def rows(self) -> Iterator[RowResult]:
        # Decode leniently and flag undecodable bytes per row (surrogateescape keeps them detectable).
        # newline="": the csv module sees every line ending (CRLF, LF, a bare CR) and quoted newlines as is.
        encoding = "utf-8-sig" if self.encoding == UTF8 else self.encoding
        text = io.TextIOWrapper(self.stream, encoding=encoding, errors="surrogateescape", newline="")
        try:
            yield from self._rows(csv.reader(text))
        finally:
            text.detach()  # the caller owns the byte stream (and reads its position for progress)

    def _rows(self, reader) -> Iterator[RowResult]:
        try:
            header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            raise FileFormatError("the CSV file is empty (no header row)") from None
        self._check_header(header)
        while True:
            line_no = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield [RowError(line_no, "(line)", f"malformed CSV: {exc}")]
                continue
            if not any(values):
                continue
            if len(values) != len(header):
                yield [RowError(line_no, "(row)", f"has {len(values)} columns, the header has {len(header)}")]
                continue
            try:
                "".join(values).encode("utf-8")
            except UnicodeEncodeError:
                yield [
                    RowError(line_no, name, f"invalid {self.encoding.upper()}")
                    for name, value in zip(header, values)
                    if _has_surrogates(value)
                ]
                continue
            record, attribute_error = self._to_record(dict(zip(header, values)), line_no)
            result = validate_row(record, line_no, read_tags=self.read_tags)
            if attribute_error is not None:
                result = [*result, attribute_error] if isinstance(result, list) else [attribute_error]
            yield result

    @staticmethod
    def _to_record(record: dict[str, Any], line_no: int) -> tuple[dict[str, Any], RowError | None]:
        if "tags" in record:
            record["tags"] = [part for part in record["tags"].split(CSV_LIST_SEPARATOR) if part.strip()]
        if "category_path" in record:
            raw_path = record["category_path"]
            separator = CSV_PATH_SEPARATOR if CSV_PATH_SEPARATOR in raw_path else CSV_LIST_SEPARATOR
            record["category_path"] = raw_path.split(separator)
        raw_attributes = record.pop("attributes", "")
        if raw_attributes.strip():
            try:
                record["attributes"] = orjson.loads(raw_attributes)
            except orjson.JSONDecodeError as exc:
                return record, RowError(line_no, "attributes", f"is not a JSON object: {exc.msg}")
        return record, None


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


READERS: dict[str, type[CatalogReader]] = {reader.name: reader for reader in (JsonlReader, CsvReader)}


def cr_only_line_endings(head: bytes) -> bool:
    """Whether the file's lines end in a bare carriage return: one in its first bytes, and no line feed."""
    return b"\r" in head and b"\n" not in head


def _decodes(head: bytes, encoding: str) -> bool:
    """Whether the first bytes decode strictly (a character cut by the end of the sniff window is fine)."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < _SNIFF_BYTES)
    except UnicodeDecodeError:
        return False
    return True


def _reads_as_gb_text(head: bytes) -> bool:
    """Whether the non-ASCII bytes pair up as GB2312/GBK Chinese characters do (lead and trail byte both
    0xA1 or above) in at least 90% of the characters.

    This is what keeps a Latin-1 (or Windows-1252) file from being read as Chinese: its accented letters
    are lone high bytes before an ASCII letter, a pair GB18030 may accept but never a pair of two high
    bytes; and a lone high byte before a space, a digit or punctuation does not decode at all."""
    characters = high_pairs = 0
    index, size = 0, len(head)
    while index < size:
        lead = head[index]
        if lead < 0x80:
            index += 1
            continue
        characters += 1
        trail = head[index + 1] if index + 1 < size else 0
        if 0x30 <= trail <= 0x39:  # a four-byte GB18030 sequence: rare in Chinese text
            index += 4
            continue
        if lead >= 0xA1 and trail >= 0xA1:
            high_pairs += 1
        index += 2
    return characters > 0 and high_pairs >= 0.9 * characters


def detect_encoding(head: bytes) -> str:
    """The encoding to read a catalog in: UTF-8, unless its first bytes are not UTF-8 but decode cleanly
    as GB18030 and read as Chinese text (``_reads_as_gb_text``); then GB18030, which covers GBK and
    GB2312. Anything else is read as UTF-8, so its bad bytes are reported row by row (or the file is
    refused as not text): no other legacy encoding is guessed, which would risk a silent mis-decode."""
    if _decodes(head, UTF8):
        return UTF8
    if b"\x00" not in head and _decodes(head, GB18030) and _reads_as_gb_text(head):
        return GB18030
    return UTF8


def looks_binary(head: bytes) -> bool:
    """NUL bytes, or many bytes that are not UTF-8: not a text catalog."""
    if b"\x00" in head:
        return True
    # A character split by the end of the sniff window is not an error: leave out its last bytes.
    sample = head[:-3] if len(head) >= _SNIFF_BYTES else head
    decoded = sample.decode("utf-8", "replace")
    return decoded.count("\ufffd") > max(8, len(decoded) // 20)


def detect_format(path: Path, declared: str | None = None, *, display_name: str | None = None) -> str:
    """Pick the reader for a file, refusing anything that is not JSONL or CSV before a row is read.

    ``display_name``: the name the user knows the file by (an upload's own name, not the server's copy),
    used in the messages and for the extension."""
    name = display_name or path.name
    suffix = Path(name).suffix.lower() or path.suffix.lower()
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
    if not head.strip():
        raise FileFormatError(f"{name} is empty")
    if detect_encoding(head) == UTF8 and looks_binary(head):
        if b"\x00" in head:
            raise FileFormatError(f"{name} is a binary file, not JSONL or CSV")
        raise FileFormatError(
            f"{name} is a binary file or text in an encoding other than UTF-8: save it as UTF-8 "
            "(GB18030/GBK Chinese text is also read; convert other encodings first, e.g. "
            "`iconv -f WINDOWS-1252 -t UTF-8`)"
        )
    if declared:
        if declared not in READERS:
            raise FileFormatError(f"unknown format {declared!r}; use one of {', '.join(READERS)}")
        candidates = [READERS[declared]]
    else:
        by_extension = [r for r in READERS.values() if suffix in r.extensions]
        candidates = by_extension or list(READERS.values())
    for reader in candidates:
        if reader.sniff(head):
            reader.check_head(head)
            return reader.name
    if head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"["):
        raise FileFormatError(
            f"{name} is a JSON array, not JSONL: write one JSON object per line (e.g. `jq -c '.[]'`)"
        )
    expected = " or ".join(r.name.upper() for r in candidates)
    raise FileFormatError(
        f"{name} does not look like {expected}: JSONL lines must be JSON objects and CSV files need "
        "a header row with at least the columns id and title"
    )


def open_reader(file_format: str, stream: BinaryIO, *, read_tags: bool = True) -> CatalogReader:
    return READERS[file_format](stream, read_tags=read_tags)
