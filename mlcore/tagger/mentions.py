"""Tag mentions: does a product's name contain the words of a tag?

Product tags are very often literally in the title ("colour:white" in "... White Skirts", a Chinese
product-type entity inside the title). A tag's surface is its value (the text after the last ``:`` of a
``field:value`` tag, else the whole tag), normalised like product text. Latin surfaces match whole
words; surfaces with Chinese characters match as substrings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse

from mlcore.text import _CJK_RE, clean_text, lexical_tokens, normalize_text
from mlcore.types import ProductRecord

__all__ = ["MentionIndex", "mention_text", "tag_surface"]

_MAX_WORDS = 5
_MAX_CHARS = 16
_MENTION_TEXT_CHARS = 300


def tag_surface(tag: str) -> str:
    value = tag.rsplit(":", 1)[1] if ":" in tag and tag.rsplit(":", 1)[1].strip() else tag
    return normalize_text(value)


def mention_text(record: ProductRecord) -> str:
    brand = clean_text(record.brand) if record.brand else ""
    return normalize_text(f"{record.title} {brand}")[:_MENTION_TEXT_CHARS]


class MentionIndex:
    """Maps tag surfaces to tag columns and finds them in product names.

    ``aliases``: tag -> other names of it (a taxonomy's synonyms); each is matched like the tag's own name
    and counts as a mention of the tag.
    """

    def __init__(self, classes: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None) -> None:
        self.n_classes = len(classes)
        self.words: dict[tuple[str, ...], list[int]] = {}
        self.chars: dict[str, list[int]] = {}
        aliases = aliases or {}
        for j, tag in enumerate(classes):
            for name in (tag, *aliases.get(tag, ())):
                self._add(tag_surface(name), j)
        self.char_lengths = sorted({len(k) for k in self.chars})

    def _add(self, surface: str, j: int) -> None:
        if not surface:
            return
        if _CJK_RE.search(surface):
            key = surface.replace(" ", "")
            if len(key) <= _MAX_CHARS and j not in self.chars.get(key, ()):
                self.chars.setdefault(key, []).append(j)
        else:
            words = tuple(lexical_tokens(surface))
            usable = words and len(words) <= _MAX_WORDS and (len(words) > 1 or len(words[0]) > 1)
            if usable and j not in self.words.get(words, ()):
                self.words.setdefault(words, []).append(j)

    def find(self, text: str) -> set[int]:
        return set(self.spans(text))

    def spans(self, text: str) -> dict[int, list[tuple[str, int, int]]]:
        """Tag column -> where its surfaces occur in ``text``: (``"w"`` word positions or ``"c"`` character
        positions of the text without spaces, start, end)."""
        found: dict[int, list[tuple[str, int, int]]] = {}
        if self.words:
            tokens = lexical_tokens(text)
            for n in range(1, _MAX_WORDS + 1):
                for i in range(len(tokens) - n + 1):
                    for j in self.words.get(tuple(tokens[i : i + n]), ()):
                        found.setdefault(j, []).append(("w", i, i + n))
        if self.chars:
            compact = text.replace(" ", "")
            for length in self.char_lengths:
                for i in range(len(compact) - length + 1):
                    for j in self.chars.get(compact[i : i + length], ()):
                        found.setdefault(j, []).append(("c", i, i + length))
        return found

    def covered(self, text: str) -> set[int]:
        """Tags mentioned in ``text`` only inside a longer mention of another tag ("滑板" only within
        "滑板车", "blue" only within "light blue"). Whether such a tag still applies is the catalog's
        convention (a parent category named inside its child's name does; a word inside a longer product
        name usually does not): the blend learns it from this flag."""
        return _covered(self.spans(text))

    def matrix(self, records: Sequence[ProductRecord]) -> sparse.csr_matrix:
        """(n, n_classes) 0/1 CSR: product i mentions tag j."""
        return self.matrices(records, covered=False)[0]

    def covered_matrix(self, records: Sequence[ProductRecord]) -> sparse.csr_matrix:
        """(n, n_classes) 0/1 CSR: product i mentions tag j only inside longer mentions (:meth:`covered`)."""
        return self.matrices(records)[1]

    def matrices(
        self, records: Sequence[ProductRecord], *, covered: bool = True
    ) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """:meth:`matrix` and :meth:`covered_matrix` from one pass over the texts (``covered=False``: the
        second is left empty, for callers that only need the mentions)."""
        found, inside = ([], []), ([], [])
        for i, r in enumerate(records):
            spans = self.spans(mention_text(r))
            for j in spans:
                found[0].append(i)
                found[1].append(j)
            for j in _covered(spans) if covered else ():
                inside[0].append(i)
                inside[1].append(j)
        shape = (len(records), self.n_classes)
        return tuple(  # type: ignore[return-value]
            sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
            for rows, cols in (found, inside)
        )


def _covered(found: Mapping[int, list[tuple[str, int, int]]]) -> set[int]:
    if len(found) < 2:
        return set()
    out = set()
    for j, spans in found.items():
        others = [s for k, ks in found.items() if k != j for s in ks]
        if all(
            any(o[0] == s[0] and o[1] <= s[1] and s[2] <= o[2] and o[2] - o[1] > s[2] - s[1] for o in others)
            for s in spans
        ):
            out.add(j)
    return out
