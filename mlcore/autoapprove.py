"""Precision-gated auto-approval: the score cuts above which a tagger's decisions may skip review.

Plain functions over (tag, score, outcome) evidence, no Django: the app (annotation.services.auto_approval)
feeds them the pairs of a model version's held-out slice and of reviews of its suggestions.

**The bound.** The precision of the pairs scoring at or above a cut is estimated from ``k`` correct of
``n`` such pairs; the cut is accepted when the one-sided Clopper-Pearson lower bound at ``confidence``
(``scipy.stats.beta.ppf(1 - confidence, k, n - k + 1)``) is at least the target. With no evidence the
bound is 0: nothing is approved.

**Choosing among cuts.** Trying every cut and keeping the lowest that passes would test many hypotheses
and overstate the guarantee. The cuts are instead tested in a fixed order, highest score first, and a
sequence stops at its first cut that fails (fixed-sequence testing, as in Learn-then-Test): the chosen
cut then carries the stated confidence. The order depends only on the scores, never on the outcomes. A
sequence starts at the first cut with :func:`min_pairs` pairs (fewer cannot clear the target even when
all are right); since one wrong pair among those would end it for good, further sequences start at 4x,
16x, ... as many pairs, all at a Bonferroni-split level (``_starts``), and the most permissive accepted
cut wins.

**Reject side.** The same test, mirrored, gives the score at or below which "not this tag" is right with
the same confidence: a product leaves the review queue only when each of its stored suggestions is either
approved or confidently rejected.

**Leaving the queue.** A per-pair guarantee on each side is not one on the product: a product has ~20
stored suggestions, so 2% wrong "no" decisions per pair would leave a third of the products incomplete,
and a gold tag outside the stored top 20 is no decision at all. So a product whose every pair is
decided leaves the review queue only while :func:`exit_gate` passes: among evidence products (held-out
slice, reviews) that the same rule would let leave, the share whose approved tags are exactly their
gold tags has its lower bound at the target. One test, no search: no multiplicity to correct. Measured,
the gate is right to be this strict: on myntra_catalog_desc with 300 / 1,000 labelled products, 64% /
58% of the unseen products the rule would let leave were exactly right (the misses: gold tags "confidently"
rejected); a reject side held to 0.995 per pair raised that to 94% / 97%, still short of 0.98, on too
few evidence products (47 / 29) for any bound to clear it. Products leave the queue where the model
gets whole products right, not merely most pairs.

**Per tag or global.** A tag with at least ``min_tag_evidence`` likely pairs (scoring at least
``LIKELY_SCORE``: the pairs an approve cut would stand on) gets cuts from its own pairs (and no approvals
when they do not pass); the pairs of all other tags are pooled into one global cut, which those tags use.
Which tags get their own cut is decided from the scores alone, never the outcomes. Counting every stored
pair instead gave nearly every tag of a small taxonomy its own cut (each product stores its top 20, so a
tag of a 50-tag taxonomy sits on most products at a low score) which its few right pairs could never pass:
measured on myntra_catalog_desc at 300 labelled products (held-out and out-of-fold evidence), no cut at
all, against a global cut approving 54% of unseen products' gold pairs at a realised precision of 0.996.
Each tag's test holds at the stated confidence on its own; across many tags the realised precision of all
approvals is what the audit measures.

**Why nothing.** Where the global pool has no approve cut, :func:`approve_shortfall` says how far it came:
too few pairs for any cut, or the closest cut's pairs, wrong ones and bound (the app shows it to the admin,
who otherwise sees auto-approval on and nothing approved).

**The evidence** is the caller's: pairs no model that scored them trained on. The app uses a version's
validation slice and its out-of-fold scores (``OUT_OF_FOLD_SCORES_FILE``, see
``mlcore.tagger.base.ScoredTagger.out_of_fold_suggestions``), and reviews of its cards.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.stats import beta

__all__ = [
    "OUT_OF_FOLD_SCORES_FILE",
    "VALIDATION_SCORES_FILE",
    "Cut",
    "CutTable",
    "Shortfall",
    "approve_shortfall",
    "clopper_pearson",
    "find_approve_cut",
    "find_cuts",
    "find_reject_cut",
    "min_pairs",
    "precision_lower_bound",
    "precision_upper_bound",
    "exit_gate",
    "product_decision",
]


# Written by mlcore.training into an artifact: per validation product {"id", "tags": gold names,
# "scores": [[tag name, score, selected], ...]} (top 20 by score, as the app stores suggestions).
VALIDATION_SCORES_FILE = "validation_scores.json"
# The same rows for the tagger's own training products, scored out of fold (ScoredTagger.out_of_fold_suggestions).
OUT_OF_FOLD_SCORES_FILE = "out_of_fold_scores.json"


def _check_counts(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def _check_level(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")


def _lower_bounds(k: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bounds, elementwise over counts ``k`` of ``n``; 0 where k is 0."""
    k, n = np.asarray(k), np.asarray(n)
    return np.where(k > 0, beta.ppf(1.0 - confidence, np.maximum(k, 1), n - k + 1), 0.0)


def precision_lower_bound(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound of a proportion (k of n) at ``confidence``; 0 without data."""
    _check_counts(k, n)
    _check_level(confidence)
    return float(_lower_bounds(k, n, confidence))


def precision_upper_bound(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of a proportion (k of n) at ``confidence``; 1 without data."""
    _check_counts(k, n)
    _check_level(confidence)
    if k == n:
        return 1.0
    return float(beta.ppf(confidence, k + 1, n - k))


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of a proportion at ``confidence`` (what the dashboard shows)."""
    _check_counts(k, n)
    _check_level(confidence)
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def min_pairs(target: float, confidence: float) -> int:
    """The fewest pairs whose lower bound can reach ``target`` (all of them correct): 149 at 0.98 / 95%."""
    _check_level(confidence)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must be in (0, 1), got {target}")
    n = max(1, math.ceil(math.log(1.0 - confidence) / math.log(target)))
    while precision_lower_bound(n, n, confidence) < target:  # float rounding at the edge
        n += 1
    return n


@dataclass(frozen=True)
class Cut:
    """A score cut and the evidence at it: ``n`` pairs on its side, ``k`` of them decided right."""

    value: float
    n: int
    k: int
    lower: float


def _starts(total: int, target: float, confidence: float) -> tuple[list[int], float]:
    """Where the fixed sequences start (pair counts) and the level each is tested at.

    One sequence starting at the fewest pairs that can pass (``min_pairs``) is stopped for good by a
    single wrong pair among the top ones. So sequences also start at 4x, 16x, ... that count, each tested
    at ``1 - (1 - confidence) / m`` for ``m`` sequences (Bonferroni: the chosen cut keeps the stated
    confidence). ``m`` is the smallest number of sequences whose starts, at that level, fit the evidence.
    The starts depend on the number of pairs only, never on the outcomes."""
    alpha = 1.0 - confidence
    for m in range(1, 17):
        level = 1.0 - alpha / m
        first = min_pairs(target, level)
        starts = []
        start = first
        while start <= total:
            starts.append(start)
            start *= 4
        if len(starts) <= m:
            return starts, level
    return starts[:16], level


def _prefix_cuts(values: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each candidate cut ends in ``values`` (sorted: a prefix is one side of a cut), and the pairs
    ``n_at`` / right pairs ``k_at`` of every prefix. A cut is a distinct value: its prefix ends where the
    next value differs (ties decide together)."""
    n_at = np.arange(1, len(values) + 1)
    k_at = np.cumsum(good)
    ends = np.flatnonzero(np.append(values[1:] != values[:-1], True))
    return ends, n_at, k_at


def _fixed_sequence(values: np.ndarray, good: np.ndarray, *, target: float, confidence: float) -> Cut | None:
    """The most permissive cut that some fixed sequence accepts. ``values`` sorted so that taking a prefix
    means "on the decided side of the cut"; ``good``: whether each pair's decision there is right. Each
    sequence tests cuts from its start onwards and stops at its first failure (see ``_starts``)."""
    if len(values) == 0:
        return None
    starts, level = _starts(len(values), target, confidence)
    ends, n_at, k_at = _prefix_cuts(values, good)
    best: Cut | None = None
    for start in starts:
        for end in ends:
            n, k = int(n_at[end]), int(k_at[end])
            if n < start:
                continue
            lower = precision_lower_bound(k, n, level)
            if lower < target:
                break
            if best is None or n > best.n:
                best = Cut(value=float(values[end]), n=n, k=k, lower=lower)
    return best


def _arrays(scores: Iterable[float], outcomes: Iterable[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(list(scores), dtype=np.float64)
    o = np.asarray(list(outcomes), dtype=bool)
    if s.shape != o.shape:
        raise ValueError(f"{len(s)} scores but {len(o)} outcomes")
    if len(s) and (not np.all(np.isfinite(s)) or s.min() < 0.0 or s.max() > 1.0):
        raise ValueError("scores must be finite and within [0, 1]")
    return s, o


@dataclass(frozen=True)
class Shortfall:
    """Why no approve cut passed, for the admin: the evidence at the cut that came closest.

    ``needed``: the fewest pairs a cut can stand on (all of them right) at the level the cuts were tested
    at. ``value`` is None when the evidence holds fewer pairs than that (no cut could be tested); else the
    tested cut with the highest lower bound, with its ``n`` pairs, ``k`` right and that ``lower`` bound.
    Diagnostic only: choosing cuts is :func:`find_approve_cut`'s, so looking at every cut here is no test."""

    pairs: int
    needed: int
    value: float | None
    n: int
    k: int
    lower: float

    def as_dict(self) -> dict:
        return asdict(self)


def approve_shortfall(
    scores: Iterable[float], outcomes: Iterable[bool], *, target: float, confidence: float
) -> Shortfall:
    """How far the evidence is from an approve cut (see :class:`Shortfall`); call it where
    :func:`find_approve_cut` found none."""
    s, o = _arrays(scores, outcomes)
    order = np.argsort(-s, kind="stable")
    values, good = s[order], o[order]
    starts, level = _starts(len(values), target, confidence)
    needed = starts[0] if starts else min_pairs(target, level)
    if len(values) < needed:
        return Shortfall(
            pairs=len(values), needed=needed, value=None, n=len(values), k=int(good.sum()), lower=0.0
        )
    ends, n_at, k_at = _prefix_cuts(values, good)
    ends = ends[n_at[ends] >= needed]
    lowers = _lower_bounds(k_at[ends], n_at[ends], level)
    best = int(np.argmax(lowers))
    end = ends[best]
    return Shortfall(
        pairs=len(values),
        needed=needed,
        value=float(values[end]),
        n=int(n_at[end]),
        k=int(k_at[end]),
        lower=float(lowers[best]),
    )


def find_approve_cut(
    scores: Iterable[float], outcomes: Iterable[bool], *, target: float, confidence: float
) -> Cut | None:
    """The lowest score cut (fixed-sequence from the top) at which pairs scoring >= it are right (the tag
    applies) with lower bound >= ``target``; None when no cut qualifies (including no evidence)."""
    s, o = _arrays(scores, outcomes)
    order = np.argsort(-s, kind="stable")
    return _fixed_sequence(s[order], o[order], target=target, confidence=confidence)


def find_reject_cut(
    scores: Iterable[float], outcomes: Iterable[bool], *, target: float, confidence: float
) -> Cut | None:
    """The highest score (fixed-sequence from the bottom) at or below which "the tag does not apply" is
    right with lower bound >= ``target``; None when no score qualifies."""
    s, o = _arrays(scores, outcomes)
    order = np.argsort(s, kind="stable")
    return _fixed_sequence(s[order], ~o[order], target=target, confidence=confidence)


@dataclass(frozen=True)
class TagCuts:
    """A tag's (or the global pool's) cuts: approve at ``approve`` and above, reject at ``reject`` and
    below; None: no cut on that side (nothing is decided there)."""

    approve: Cut | None
    reject: Cut | None
    pairs: int
    positives: int
    # Where ``approve`` is None on the global pool: how far its evidence is from a cut (the pages say why
    # a version approves nothing). Not worked out per tag: a tag's own test is one of many.
    shortfall: Shortfall | None = None

    def as_dict(self) -> dict:
        return {
            "approve": None if self.approve is None else asdict(self.approve),
            "reject": None if self.reject is None else asdict(self.reject),
            "pairs": self.pairs,
            "positives": self.positives,
            "shortfall": None if self.shortfall is None else self.shortfall.as_dict(),
        }


@dataclass(frozen=True)
class CutTable:
    """Per-tag cuts where a tag has enough evidence, a global cut for every other tag."""

    per_tag: dict[Hashable, TagCuts]
    global_: TagCuts
    target: float
    confidence: float
    min_tag_evidence: int
    extra: dict = field(default_factory=dict)

    def for_tag(self, tag: Hashable) -> TagCuts:
        return self.per_tag.get(tag, self.global_)

    def approves(self, tag: Hashable, score: float) -> bool:
        cut = self.for_tag(tag).approve
        return cut is not None and score >= cut.value

    def rejects(self, tag: Hashable, score: float) -> bool:
        cuts = self.for_tag(tag)
        # Approval wins where both sides would claim a score (possible only on thin, odd evidence).
        return cuts.reject is not None and score <= cuts.reject.value and not self.approves(tag, score)


def _tag_cuts(scores: list[float], outcomes: list[bool], *, target: float, confidence: float) -> TagCuts:
    return TagCuts(
        approve=find_approve_cut(scores, outcomes, target=target, confidence=confidence),
        reject=find_reject_cut(scores, outcomes, target=target, confidence=confidence),
        pairs=len(scores),
        positives=int(sum(outcomes)),
    )


# A tag's "likely yes" pairs (score at least this) are the evidence its own approve cut would stand on.
LIKELY_SCORE = 0.5


def find_cuts(
    pairs: Iterable[tuple[Hashable, float, bool]],
    *,
    target: float,
    confidence: float,
    min_tag_evidence: int,
) -> CutTable:
    """Cuts from evidence ``pairs`` of (tag, score, the tag applies): per tag for tags with at least
    ``min_tag_evidence`` pairs scoring at least ``LIKELY_SCORE`` (chosen from the scores alone, never
    the outcomes), one global cut from the pooled pairs of all other tags."""
    if min_tag_evidence < 1:
        raise ValueError(f"min_tag_evidence must be at least 1, got {min_tag_evidence}")
    min_pairs(target, confidence)  # validates both
    by_tag: dict[Hashable, tuple[list[float], list[bool]]] = {}
    for tag, score, outcome in pairs:
        scores, outcomes = by_tag.setdefault(tag, ([], []))
        scores.append(float(score))
        outcomes.append(bool(outcome))
    per_tag: dict[Hashable, TagCuts] = {}
    pooled_scores: list[float] = []
    pooled_outcomes: list[bool] = []
    for tag, (scores, outcomes) in by_tag.items():
        if sum(score >= LIKELY_SCORE for score in scores) >= min_tag_evidence:
            per_tag[tag] = _tag_cuts(scores, outcomes, target=target, confidence=confidence)
        else:
            pooled_scores += scores
            pooled_outcomes += outcomes
    global_ = _tag_cuts(pooled_scores, pooled_outcomes, target=target, confidence=confidence)
    if global_.approve is None:
        shortfall = approve_shortfall(pooled_scores, pooled_outcomes, target=target, confidence=confidence)
        global_ = replace(global_, shortfall=shortfall)
    return CutTable(
        per_tag=per_tag,
        global_=global_,
        target=target,
        confidence=confidence,
        min_tag_evidence=min_tag_evidence,
    )


@dataclass(frozen=True)
class ProductDecision:
    approved: tuple[Hashable, ...]  # tags approved on the product
    confident: bool  # every stored suggestion approved or confidently rejected, at least one approved


def product_decision(suggestions: Iterable[tuple[Hashable, float]], cuts: CutTable) -> ProductDecision:
    """What auto-approval does with one product's stored suggestions (tag, score)."""
    approved = []
    unsure = False
    for tag, score in suggestions:
        if cuts.approves(tag, score):
            approved.append(tag)
        elif not cuts.rejects(tag, score):
            unsure = True
    return ProductDecision(approved=tuple(approved), confident=bool(approved) and not unsure)


@dataclass(frozen=True)
class ExitGate:
    """Evidence products the rule lets leave the queue (``n``), exactly right among them (``k``)."""

    n: int
    k: int
    lower: float
    passes: bool

    def as_dict(self) -> dict:
        return asdict(self)


def exit_gate(
    products: Iterable[tuple[Iterable[tuple[Hashable, float]], set]],
    cuts: CutTable,
) -> ExitGate:
    """Whether confident products may leave the review queue, from evidence ``products``: each is (its
    stored suggestions (tag, score), its gold tags). A product the rule lets leave is right when its
    approved tags are exactly its gold tags (a gold tag it missed, stored or not, makes it wrong)."""
    n = k = 0
    for suggestions, gold in products:
        decision = product_decision(suggestions, cuts)
        if not decision.confident:
            continue
        n += 1
        k += set(decision.approved) == set(gold)
    lower = precision_lower_bound(k, n, cuts.confidence)
    return ExitGate(n=n, k=k, lower=lower, passes=n > 0 and lower >= cuts.target)
