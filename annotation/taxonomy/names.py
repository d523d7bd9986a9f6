"""Tag names: one folding rule for every entry point (import, review, API, taxonomy files).

"T-Shirt", "t shirt", "Ｔ－ＳＨＩＲＴ" and "  t_shirt " all fold to "t shirt", so they can never become
separate tags; an alias folds the same way and resolves to its canonical tag.

Invisible format characters (Unicode category Cf: zero-width space, BOM, soft hyphen, left-to-right and
right-to-left marks, zero-width joiners, ...) are dropped from the display name and so from the folding
key: "appa\u00adrel" and "\ufeffapparel" are the tag "apparel", not two more tags that display exactly
like it. (Migration 0005 cleaned the names stored before this rule.)
"""

from __future__ import annotations

import functools
import re
import unicodedata

TAG_NAME_MAX_LENGTH = 200
_SEPARATORS = re.compile(r"[\s\-_‐‑‒–—]+")


class TagNameError(ValueError):
    """A tag name that cannot be stored (empty, too long, control characters)."""


def clean_tag_display_name(name: str) -> str:
    """The name as shown: NFKC, invisible format characters dropped, trimmed, inner whitespace collapsed;
    case kept."""
    if not isinstance(name, str):
        raise TagNameError(f"tag name must be a string, got {type(name).__name__}")
    return _clean_tag_display_name(name)


def normalize_tag_name(name: str) -> str:
    """The folding key: the display name case-folded, hyphens/underscores/whitespace runs as one space."""
    if not isinstance(name, str):
        raise TagNameError(f"tag name must be a string, got {type(name).__name__}")
    return _normalize_tag_name(name)


# Cached: an import of a million products repeats a few thousand tag names; folding each occurrence
# again (NFKC + regex) was most of the import's time. Errors are not cached (they are raised).
@functools.lru_cache(maxsize=1 << 16)
def _clean_tag_display_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    if any(unicodedata.category(ch) == "Cc" for ch in text.replace("\t", " ")):
        raise TagNameError(f"tag name {name!r} contains control characters")
    if not text.isascii():  # the common case skips the per-character scan
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = " ".join(text.split())
    if not text:
        raise TagNameError("tag name is empty")
    if len(text) > TAG_NAME_MAX_LENGTH:
        raise TagNameError(f"tag name is longer than {TAG_NAME_MAX_LENGTH} characters")
    return text


@functools.lru_cache(maxsize=1 << 16)
def _normalize_tag_name(name: str) -> str:
    text = _clean_tag_display_name(name).casefold()
    text = _SEPARATORS.sub(" ", text).strip()
    if not text:
        raise TagNameError(f"tag name {name!r} has no letters or digits")
    return text
