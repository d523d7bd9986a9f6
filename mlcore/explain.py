"""Why a tagger suggests a tag, in a few words a merchandiser can check on the review card.

An :class:`Explanation` cites what the tagger actually scores with (its
:meth:`~mlcore.tagger.base.ScoredTagger.explanation_sources`):

- **mentions**: the words of the title, brand or description that name the tag (its value, the text
  after the last ``:`` of ``field:value``) or one of its aliases, as character offsets in the ORIGINAL
  field text so a page can highlight them. Latin words match whole words (also written together,
  "T-Shirts" for ``tshirts``, or in the singular, "Dress" for ``dresses``: ``exact`` is False then);
  Chinese surfaces match as substrings, as in :mod:`mlcore.tagger.mentions`.
- **neighbours** (default tagger): the most similar training products that carry the tag, from the
  tagger's neighbour index (id, title, cosine similarity, and rank among all training products: the
  tagger's vote counts ranks up to its ``knn_k``).
- **lexical** (default and lexical taggers): the words of this product that push the tag's one-vs-rest
  logit up most (TF-IDF value x weight). Character n-gram features are credited to the title words they
  lie in (jieba words for Chinese), so the list reads as words, not fragments.

Which parts exist depends on the tagger (keyword: mentions only). A tag the model does not know (nor as
an alias target) gets an empty explanation, not an error. :func:`explain_many` explains all shown tags of
several products at once, sharing the per-product work (one feature row, one embedding).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from mlcore.tagger.base import ExplanationSources, NeighbourIndex, Tagger
from mlcore.tagger.features import title_text
from mlcore.tagger.mentions import tag_surface
from mlcore.text import _CJK_CLASS, _CJK_RE, clean_text, lexical_tokens, segment_chinese
from mlcore.types import ProductRecord

__all__ = ["Explanation", "LexicalTerm", "Mention", "Neighbour", "explain", "explain_many"]

# Fields searched for mentions, in the order they are cited; the description only up to where the
# lexical features read it.
_MENTION_FIELDS = ("title", "brand", "description")
_DESCRIPTION_CHARS = 1000
# A tag surface of more words than this is not looked for (as in mlcore.tagger.mentions).
_MAX_SURFACE_WORDS = 5
_SUMMARY_TITLE_CHARS = 40
_LATIN_RE = re.compile(f"[^\\W_{_CJK_CLASS}]+")
_SCRIPT_RUN_RE = re.compile(f"[{_CJK_CLASS}]+|[^\\W_{_CJK_CLASS}]+")


@dataclass(frozen=True, slots=True)
class Mention:
    """Words of a product field that name the tag: ``record.<field>[start:end] == text``."""

    field: str
    start: int
    end: int
    text: str
    surface: str  # the tag's (or alias's) words, normalised, that this span matches
    exact: bool  # the same words as the surface (False: written together or in the singular)


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A training product that carries the tag; ``id``/``title`` are None for older artifacts."""

    id: str | None
    title: str | None
    similarity: float
    rank: int  # 1 = the most similar training product


@dataclass(frozen=True, slots=True)
class LexicalTerm:
    """A word (or word pair) of the product and how much it adds to the tag's logit."""

    term: str
    weight: float


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why ``tag`` is suggested for a product (see the module docstring); ``summary`` says it in a few
    words (the strongest reason), '' when there is nothing to cite."""

    tag: str
    known: bool
    mentions: tuple[Mention, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    lexical: tuple[LexicalTerm, ...] = ()
    summary: str = ""

    @property
    def empty(self) -> bool:
        return not (self.mentions or self.neighbours or self.lexical)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: ``{"tag", "known", "summary", "mentions": [...], "neighbours": [...],
        "lexical": [...]}``."""
        return {
            "tag": self.tag,
            "known": self.known,
            "summary": self.summary,
            "mentions": [
                {
                    "field": m.field,
                    "start": m.start,
                    "end": m.end,
                    "text": m.text,
                    "surface": m.surface,
                    "exact": m.exact,
                }
                for m in self.mentions
            ],
            "neighbours": [
                {"id": n.id, "title": n.title, "similarity": n.similarity, "rank": n.rank}
                for n in self.neighbours
            ],
            "lexical": [{"term": t.term, "weight": t.weight} for t in self.lexical],
        }


def explain(model: Tagger, record: ProductRecord, tag: str, *, max_items: int = 3) -> Explanation:
    """Why ``model`` suggests ``tag`` for ``record``: at most ``max_items`` mentions, neighbours and
    lexical terms each."""
    return explain_many(model, [record], [[tag]], max_items=max_items)[0][0]


def explain_many(
    model: Tagger,
    records: Sequence[ProductRecord],
    tags_per_record: Sequence[Sequence[str]],
    *,
    max_items: int = 3,
) -> list[list[Explanation]]:
    """One :class:`Explanation` per (record, tag), in the order given: ``out[i][k]`` explains
    ``tags_per_record[i][k]`` for ``records[i]``. The work per product (its feature row, its embedding
    and similarities) is done once for all its tags, and once per call for all products."""
    records = list(records)
    if len(records) != len(tags_per_record):
        raise ValueError(f"{len(records)} records but {len(tags_per_record)} tag lists")
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    sources_of = getattr(model, "explanation_sources", None)
    sources = sources_of() if sources_of is not None else ExplanationSources()
    targets = _TagTargets.of(model)
    columns = [[targets.columns(tag) for tag in tags] for tags in tags_per_record]

    mentions: list[list[tuple[Mention, ...]]] = [[() for _ in tags] for tags in tags_per_record]
    if sources.mentions:
        for i, (record, tags) in enumerate(zip(records, tags_per_record)):
            texts = _record_texts(record)
            for k, tag in enumerate(tags):
                if columns[i][k]:
                    mentions[i][k] = _find_mentions(texts, targets.surfaces(tag), max_items)

    lexical: list[list[tuple[LexicalTerm, ...]]] = [[() for _ in tags] for tags in tags_per_record]
    if sources.featurizer is not None and sources.linear is not None:
        lexical = _lexical_terms(sources.featurizer, sources.linear, records, columns, max_items)

    neighbours: list[list[tuple[Neighbour, ...]]] = [[() for _ in tags] for tags in tags_per_record]
    if sources.neighbours is not None:
        neighbours = _neighbours(sources.neighbours, records, columns, max_items)

    out: list[list[Explanation]] = []
    for i, tags in enumerate(tags_per_record):
        row = []
        for k, tag in enumerate(tags):
            if not columns[i][k]:
                row.append(Explanation(tag=tag, known=False))
                continue
            m, n, lex = mentions[i][k], neighbours[i][k], lexical[i][k]
            knn_k = sources.neighbours.k if sources.neighbours is not None else 0
            row.append(
                Explanation(
                    tag=tag,
                    known=True,
                    mentions=m,
                    neighbours=n,
                    lexical=lex,
                    summary=_summary(m, n, lex, knn_k),
                )
            )
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------ tag targets
@dataclass
class _TagTargets:
    """A model's tag columns and the words that name each tag (its own and its aliases')."""

    column_of: dict[str, int]
    aliases_of: dict[str, list[str]]
    _surfaces: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: Tagger) -> _TagTargets:
        postprocess = getattr(model, "postprocess", None)
        aliases: Mapping[str, str] = getattr(postprocess, "aliases", None) or {}
        aliases_of: dict[str, list[str]] = {}
        for alias, canonical in aliases.items():
            aliases_of.setdefault(canonical, []).append(alias)
        return cls({t: j for j, t in enumerate(model.classes_)}, aliases_of)

    def columns(self, tag: str) -> list[int]:
        """The model's columns whose score the tag gets: its own first, then its aliases' (post-processing
        merges an alias's score into its canonical tag); [] for a tag the model does not know."""
        names = [tag, *self.aliases_of.get(tag, ())]
        return [self.column_of[n] for n in names if n in self.column_of]

    def surfaces(self, tag: str) -> tuple[str, ...]:
        if tag not in self._surfaces:
            found = [tag_surface(n) for n in (tag, *self.aliases_of.get(tag, ()))]
            self._surfaces[tag] = tuple(dict.fromkeys(s for s in found if s))
        return self._surfaces[tag]


# ------------------------------------------------------------------------------------------- mentions
class _FieldText:
    """A field normalised like product text (NFKC, case folded), each normalised character mapped back to
    the span of the original text it came from, plus its word tokens and its space-free form."""

    def __init__(self, name: str, original: str) -> None:
        self.name = name
        self.original = original
        if original.isascii():
            self.text = original.lower()
            self.src_start = list(range(len(original)))
            self.src_end = list(range(1, len(original) + 1))
        else:
            chars: list[str] = []
            self.src_start, self.src_end = [], []
            i, n = 0, len(original)
            while i < n:
                # A base character with its combining marks normalises as one unit (NFKC composes them).
                j = i + 1
                while j < n and unicodedata.combining(original[j]):
                    j += 1
                piece = unicodedata.normalize("NFKC", original[i:j]).casefold()
                for ch in piece:
                    chars.append(ch)
                    self.src_start.append(i)
                    self.src_end.append(j)
                i = j
            self.text = "".join(chars)
        self._tokens: list[tuple[str, int, int]] | None = None
        self._token_index: tuple[dict[str, list[int]], dict[str, list[int]]] | None = None
        self._compact: tuple[str, list[int]] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of normalised characters ``[start, end)``."""
        return self.src_start[start], self.src_end[end - 1]

    @property
    def tokens(self) -> list[tuple[str, int, int]]:
        """Latin/digit words (split from adjacent Chinese) as (word, start, end) in ``text``."""
        if self._tokens is None:
            self._tokens = [(m.group(), m.start(), m.end()) for m in _LATIN_RE.finditer(self.text)]
        return self._tokens

    @property
    def token_index(self) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """(token -> its positions in ``tokens``, singular of a token -> positions): where a surface's
        match can start, found without scanning every token for every tag."""
        if self._token_index is None:
            by_token: dict[str, list[int]] = {}
            by_singular: dict[str, list[int]] = {}
            for k, (token, _, _) in enumerate(self.tokens):
                by_token.setdefault(token, []).append(k)
                by_singular.setdefault(_singular(token), []).append(k)
            self._token_index = (by_token, by_singular)
        return self._token_index

    @property
    def compact(self) -> tuple[str, list[int]]:
        """``text`` without whitespace, and each of its characters' index in ``text``."""
        if self._compact is None:
            kept = [(ch, k) for k, ch in enumerate(self.text) if not ch.isspace()]
            self._compact = ("".join(ch for ch, _ in kept), [k for _, k in kept])
        return self._compact


def _record_texts(record: ProductRecord) -> list[_FieldText]:
    values = {
        "title": record.title or "",
        "brand": record.brand or "",
        "description": (record.description or "")[:_DESCRIPTION_CHARS],
    }
    return [_FieldText(name, values[name]) for name in _MENTION_FIELDS if values[name]]


def _singular(word: str) -> str:
    """A light English singular, enough to see "Dress" in a ``dresses`` tag."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _find_mentions(texts: list[_FieldText], surfaces: Sequence[str], max_items: int) -> tuple[Mention, ...]:
    found: dict[tuple[str, int, int], Mention] = {}
    for ft in texts:
        for surface in surfaces:
            for start, end, exact in _surface_spans(ft, surface):
                a, b = ft.span(start, end)
                key = (ft.name, a, b)
                if key not in found or (exact and not found[key].exact):
                    found[key] = Mention(ft.name, a, b, ft.original[a:b], surface, exact)
    order = {name: i for i, name in enumerate(_MENTION_FIELDS)}
    ranked = sorted(found.values(), key=lambda m: (order[m.field], not m.exact, m.start))
    return tuple(ranked[:max_items])


def _surface_spans(ft: _FieldText, surface: str) -> list[tuple[int, int, bool]]:
    """(start, end, exact) spans of ``ft.text`` that name ``surface``."""
    spans: list[tuple[int, int, bool]] = []
    if _CJK_RE.search(surface):
        key = surface.replace(" ", "")
        compact, positions = ft.compact
        at = compact.find(key)
        while at != -1:
            spans.append((positions[at], positions[at + len(key) - 1] + 1, True))
            at = compact.find(key, at + 1)
        return spans
    words = lexical_tokens(surface)
    if not words or len(words) > _MAX_SURFACE_WORDS or (len(words) == 1 and len(words[0]) < 2):
        return spans
    joined = "".join(words)
    folded = _singular(joined)
    tokens = ft.tokens
    by_token, by_singular = ft.token_index
    # A match starts with a token that begins the surface (or its singular), or is one token whose
    # singular is the surface's.
    starts = set(by_singular.get(folded, ()))
    for word in {joined, folded}:
        for length in range(1, len(word) + 1):
            starts.update(by_token.get(word[:length], ()))
    for s in sorted(starts):
        run = ""
        for e in range(s, min(len(tokens), s + _MAX_SURFACE_WORDS)):
            run += tokens[e][0]
            # Only runs that start the surface (or its singular) can become a match.
            if not (joined.startswith(run) or folded.startswith(run) or _singular(run) == folded):
                break
            exact = e - s + 1 == len(words) and all(tokens[s + q][0] == w for q, w in enumerate(words))
            if exact or run == joined or _singular(run) == folded:
                spans.append((tokens[s][1], tokens[e][2], exact))
    return spans


# -------------------------------------------------------------------------------------- derived data
# What explanations derive once per loaded model (feature names, a tag's carriers, id -> row), keyed by
# the identity of the model part it comes from: (kind, part, derived). A few entries cover the models a
# process keeps loaded (mlcore.inference caches two); older ones are dropped, with their parts.
_DERIVED: list[tuple[str, Any, Any]] = []
_DERIVED_SIZE = 8
_derived_lock = threading.Lock()


def _derived(kind: str, part: Any, build: Callable[[Any], Any]) -> Any:
    with _derived_lock:
        for k, known, value in _DERIVED:
            if k == kind and known is part:
                return value
    value = build(part)
    with _derived_lock:
        _DERIVED.insert(0, (kind, part, value))
        del _DERIVED[_DERIVED_SIZE:]
    return value


def _word_names(featurizer: Any) -> np.ndarray:
    """The featurizer's word features' names by column (200k strings: built once per model)."""

    def build(f: Any) -> np.ndarray:
        names = np.empty(len(f.word_.vocabulary_), dtype=object)
        for term, j in f.word_.vocabulary_.items():
            names[j] = term
        return names

    return _derived("word-names", featurizer, build)


# -------------------------------------------------------------------------------------------- lexical


def _word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words credited with character n-grams: Latin/digit runs, jieba words of Chinese runs."""
    out: list[tuple[str, int, int]] = []
    for m in _SCRIPT_RUN_RE.finditer(text):
        run, at = m.group(), m.start()
        if _CJK_RE.match(run) and len(run) > 1:
            for word in segment_chinese(run):
                out.append((word, at, at + len(word)))
                at += len(word)
        else:
            out.append((run, at, m.end()))
    return out


def _char_credit(
    featurizer: Any, record: ProductRecord, local_of: Mapping[int, int]
) -> tuple[list[str], np.ndarray]:
    """(words, credit): ``credit[w, l]`` is the share of the feature at position ``l`` of the product's
    feature row (``local_of``: feature column -> position, character features only) that falls on word
    ``w`` of the product's title text. Replays the vectorizer's ``char_wb`` analyzer over the same text
    the featurizer read."""
    text = title_text(record).lower()  # the vectorizer lower-cases too
    spans = _word_spans(text)
    credit = np.zeros((len(spans), len(local_of) and max(local_of.values()) + 1), dtype=np.float32)
    if not spans or not local_of:
        return [w for w, _, _ in spans], credit
    word_at = [-1] * len(text)  # the word each character of the text belongs to
    for w, (_, a, b) in enumerate(spans):
        word_at[a:b] = [w] * (b - a)
    vocabulary = featurizer.char_.vocabulary_
    n_word = len(featurizer.word_.vocabulary_)
    min_n, max_n = featurizer.char_.ngram_range
    hits: list[tuple[int, set[int]]] = []  # (position in the row, words it touches), one per occurrence
    for m in re.finditer(r"\S+", text):
        padded = f" {m.group()} "
        base = m.start() - 1  # text offset of padded[0]
        length = len(padded)
        for n in range(min_n, max_n + 1):
            for p in range(0, max(1, length - n + 1)):
                j = vocabulary.get(padded[p : p + n])
                local = local_of.get(n_word + j) if j is not None else None
                if local is None:
                    continue
                a, b = max(m.start(), base + p), min(m.end(), base + p + n)
                touched = {w for w in word_at[a:b] if w >= 0}
                if touched:
                    hits.append((local, touched))
            if length <= n:  # the analyzer counts a word no longer than n once, then stops
                break
    occurrences: dict[int, int] = {}
    for local, _ in hits:
        occurrences[local] = occurrences.get(local, 0) + 1
    for local, touched in hits:
        share = 1.0 / (occurrences[local] * len(touched))
        for w in touched:
            credit[w, local] += share
    return [w for w, _, _ in spans], credit


def _lexical_terms(
    featurizer: Any,
    linear: Any,
    records: list[ProductRecord],
    columns: list[list[list[int]]],
    max_items: int,
) -> list[list[tuple[LexicalTerm, ...]]]:
    x = featurizer.transform(records)
    names = _word_names(featurizer)
    n_word = len(names)
    coef = linear.coef_
    out: list[list[tuple[LexicalTerm, ...]]] = []
    for i, record in enumerate(records):
        cols = [c[0] if c else -1 for c in columns[i]]
        known = [k for k, c in enumerate(cols) if c >= 0]
        row_terms: list[tuple[LexicalTerm, ...]] = [() for _ in cols]
        start, end = x.indptr[i], x.indptr[i + 1]
        features, values = x.indices[start:end], x.data[start:end]
        if not known or len(features) == 0:
            out.append(row_terms)
            continue
        # contributions[l, q]: the row's l-th feature's TF-IDF value x its weight for the q-th known tag
        # (dense rows of the weights, then the tags' columns: cheaper than slicing sparse columns).
        weights = coef[features].toarray()[:, [cols[k] for k in known]]
        contributions = values[:, None] * weights
        is_word = features < n_word
        terms = [str(t) for t in names[features[is_word]]]
        per_term = [contributions[is_word]]
        char_local = {int(f): pos for pos, f in enumerate(features) if f >= n_word}
        if char_local:
            words, credit = _char_credit(featurizer, record, char_local)
            if words:
                terms += words
                # Per word: the credited share of each of its n-grams' contributions.
                per_term.append(credit @ contributions[: credit.shape[1]])
        term_id: dict[str, int] = {}
        ids = np.array([term_id.setdefault(t, len(term_id)) for t in terms], dtype=np.int64)
        totals = np.zeros((len(term_id), len(known)), dtype=np.float64)
        np.add.at(totals, ids, np.vstack(per_term))
        unique_terms = list(term_id)
        for q, k in enumerate(known):
            column = totals[:, q]
            m = min(max_items, len(column))
            top = np.argpartition(-column, m - 1)[:m] if m < len(column) else np.arange(len(column))
            top = top[np.argsort(-column[top], kind="stable")]
            # Weights are rounded for display; one that rounds to 0 (or is negative) says nothing.
            row_terms[k] = tuple(
                LexicalTerm(unique_terms[t], round(float(column[t]), 4))
                for t in top
                if round(float(column[t]), 4) > 0
            )
        out.append(row_terms)
    return out


# ------------------------------------------------------------------------------------------ neighbours
def _carriers(labels: Any, column: int) -> np.ndarray:
    """Index rows carrying the tag of ``column`` (from the label matrix's CSC form, built once)."""
    csc = _derived("carriers", labels, sparse.csc_matrix)
    return csc.indices[csc.indptr[column] : csc.indptr[column + 1]]


def _similarities(queries: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(n_queries, n_index) dot products. A card asks for one row: numpy's own loop (einsum) then, as
    threaded BLAS spin-waits on a busy machine (20k x 384: 1.3 ms against 20 ms at a load of 9 on 2
    cores); BLAS for batches, where its blocking pays."""
    if len(queries) <= 4:
        return np.einsum("ij,kj->ki", index, queries)
    return queries @ index.T


def _neighbours(
    index: NeighbourIndex,
    records: list[ProductRecord],
    columns: list[list[list[int]]],
    max_items: int,
) -> list[list[tuple[Neighbour, ...]]]:
    out: list[list[tuple[Neighbour, ...]]] = [[() for _ in cols] for cols in columns]
    wanted = [i for i, cols in enumerate(columns) if any(cols)]
    if not wanted or index.embeddings.shape[0] == 0:
        return out
    ids, titles = index.ids, index.titles
    row_of_id = _row_of_id(ids) if ids is not None else {}
    for block in range(0, len(wanted), 256):
        chunk = wanted[block : block + 256]
        emb = index.embed([records[i] for i in chunk])
        similarities = _similarities(emb, index.embeddings)
        for i, sims in zip(chunk, similarities):
            own = row_of_id.get(records[i].id)
            for k, cols in enumerate(columns[i]):
                if not cols:
                    continue
                rows = (
                    _carriers(index.labels, cols[0])
                    if len(cols) == 1
                    else np.unique(np.concatenate([_carriers(index.labels, c) for c in cols]))
                )
                if own is not None:
                    rows = rows[rows != own]  # a training product is not its own evidence
                if len(rows) == 0:
                    continue
                s = sims[rows]
                m = min(max_items, len(rows))
                top = np.argpartition(-s, m - 1)[:m] if m < len(rows) else np.arange(len(rows))
                top = top[np.argsort(-s[top], kind="stable")]
                found = []
                for t in top:
                    r = int(rows[t])
                    better = int(np.count_nonzero(sims > s[t]))
                    if own is not None and sims[own] > s[t]:
                        better -= 1
                    found.append(
                        Neighbour(
                            id=ids[r] if ids is not None else None,
                            title=titles[r] if titles is not None else None,
                            similarity=round(float(s[t]), 4),
                            rank=better + 1,
                        )
                    )
                out[i][k] = tuple(found)
    return out


def _row_of_id(ids: Sequence[str]) -> dict[str, int]:
    """id -> index row (built once per model)."""
    return _derived("row-of-id", ids, lambda known: {x: r for r, x in enumerate(known)})


# --------------------------------------------------------------------------------------------- summary
def _quote(text: str, limit: int) -> str:
    text = clean_text(text)
    return f'"{text}"' if len(text) <= limit else f'"{text[: limit - 1].rstrip()}…"'


def _summary(
    mentions: tuple[Mention, ...],
    neighbours: tuple[Neighbour, ...],
    lexical: tuple[LexicalTerm, ...],
    knn_k: int,
) -> str:
    """The strongest reason in a few words: a mention; else neighbours that took part in the tagger's
    vote; else the lexical words; else the closest training product carrying the tag."""
    if mentions:
        m = mentions[0]
        return f"{_quote(m.text, _SUMMARY_TITLE_CHARS)} in the {m.field}"
    voted = [n for n in neighbours if n.rank <= knn_k]
    if voted:
        best = voted[0]
        if best.title:
            more = f" and {len(voted) - 1} more" if len(voted) > 1 else ""
            return f"like {_quote(best.title, _SUMMARY_TITLE_CHARS)}{more}"
        return f"like {len(voted)} similar tagged product{'s' if len(voted) > 1 else ''}"
    if lexical:
        return "words: " + ", ".join(t.term for t in lexical)
    if neighbours:
        best = neighbours[0]
        closest = _quote(best.title, _SUMMARY_TITLE_CHARS) if best.title else "a tagged product"
        return f"closest: {closest} ({best.similarity:.2f})"
    return ""
