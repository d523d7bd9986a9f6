"""Text preparation shared by every tagger: cleaning, language detection, tokenisation, product text.

The recipe: strip HTML and control characters, Unicode NFKC, case folding (a no-op for Chinese),
collapse whitespace; Chinese runs are segmented with jieba wherever lexical features are built.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import unicodedata
from collections.abc import Mapping
from typing import Any

from mlcore.types import ProductRecord

__all__ = [
    "clean_text",
    "lexical_tokens",
    "normalize_text",
    "product_text",
    "segment_chinese",
]

_TAG_RE = re.compile(r"<[^>]{0,500}>")
_WS_RE = re.compile(r"\s+")
# CJK unified ideographs (+ extension A and compatibility ideographs).
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK_CLASS}]")
_RUN_RE = re.compile(f"[{_CJK_CLASS}]+|[^\\W_]+", re.UNICODE)

_jieba_lock = threading.Lock()
_jieba_ready = False


def clean_text(text: str | None) -> str:
    """HTML tags/entities and control characters removed, NFKC, whitespace collapsed (case kept)."""
    if not text:
        return ""
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text)
    # Control and format characters (BOM, zero-width, bidi marks) become spaces; real whitespace stays.
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf") and not ch.isspace() else ch for ch in text
    )
    return _WS_RE.sub(" ", text).strip()


def normalize_text(text: str | None) -> str:
    """:func:`clean_text` plus case folding (affects Latin and other cased scripts only)."""
    return clean_text(text).casefold()


def _ensure_jieba() -> Any:
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                # jieba logs "Building prefix dict..." at DEBUG/INFO on first use: keep it quiet.
                jieba.setLogLevel(logging.WARNING)
                logging.getLogger("jieba").setLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def segment_chinese(text: str) -> list[str]:
    """jieba words of a Chinese string (precise mode), whitespace tokens dropped."""
    jieba = _ensure_jieba()
    return [w for w in jieba.lcut(text) if w.strip()]


def lexical_tokens(text: str) -> list[str]:
    """Word tokens for lexical features: Latin/digit words as they are, Chinese runs cut by jieba.

    Expects normalised text (:func:`normalize_text`); punctuation is dropped.
    """
    tokens: list[str] = []
    for run in _RUN_RE.findall(text):
        if _CJK_RE.match(run):
            tokens.extend(segment_chinese(run) if len(run) > 1 else [run])
        else:
            tokens.append(run)
    return tokens


def _attributes_text(attributes: Mapping[str, Any] | None) -> str:
    if not attributes:
        return ""
    parts = []
    for key, value in attributes.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def product_text(
    record: ProductRecord, *, title_repeats: int = 2, max_description_chars: int = 600, fold_case: bool = True
) -> str:
    """One normalised string for a product: title (repeated ``title_repeats`` times, so it weighs most),
    brand, category path, attributes and the start of the description, separated by `` | ``."""
    title = clean_text(record.title)
    parts = [title] * max(1, title_repeats)
    if record.brand:
        parts.append(clean_text(record.brand))
    if record.category_path:
        parts.append(" > ".join(clean_text(c) for c in record.category_path))
    attrs = _attributes_text(record.attributes)
    if attrs:
        parts.append(clean_text(attrs))
    if record.description and max_description_chars > 0:
        parts.append(clean_text(record.description)[:max_description_chars])
    text = " | ".join(p for p in parts if p)
    return text.casefold() if fold_case else text
