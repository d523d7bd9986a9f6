"""Tags that exclude each other: facets learned from the labels, and how the selection treats them.

Many catalogs give a product one value per attribute: one gender, one season, one top-level category, one
colour. Per-tag thresholds know nothing of that, so a card can come with two colours pre-checked, or with
none, and each costs the reviewer a click. This module finds such groups from the labels alone (no naming
convention such as ``colour:`` is assumed) and lets the tagger pick, per group and on held-out scores, how
the selection treats it.

**Groups.** Tags ``a`` and ``b`` exclude each other when they (almost) never share a product although,
were they independent, they would share several: at most ``max_overlap`` of the rarer tag's products
carry both, and the expected co-occurrence ``support(a) * support(b) / n`` is at least ``min_expected``.
The second condition keeps two rare tags that simply never met apart: their exclusion is not evidence.
Groups grow greedily, most frequent tag first: a group's seed takes, in order of support, every tag that
excludes all its members so far. The frequent values of a facet join first, so a facet's group is not
captured by a rare tag of another level (a hierarchy's level-1 nodes group together, their children form
groups of their own).

**Rules.** ``at_most_one``: when several members are selected, only the best-scored stays;
``exactly_one``: the same, and the best-scored member is selected when none is. Each group gets the rule
(or none) that maximises micro-F1 on held-out scores, and only when it changes at least ``min_changes``
decisions there: a rule tuned on a handful of products would only fit their noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from mlcore.thresholds import micro_f1_at

__all__ = ["GROUP_RULES", "apply_group_rules", "choose_group_rules", "learn_exclusive_groups"]

GROUP_RULES = ("at_most_one", "exactly_one")

# Candidates are the most frequent tags: the pairwise test is quadratic, and a tag rarer than the
# ``min_expected`` bound allows cannot join a group of frequent tags anyway.
MAX_CANDIDATES = 3000


def learn_exclusive_groups(
    y: sparse.spmatrix | np.ndarray,
    *,
    min_support: int = 5,
    max_overlap: float = 0.01,
    min_expected: float = 2.0,
) -> list[np.ndarray]:
    """Groups of mutually exclusive tag columns (each at least two columns) from the 0/1 labels ``y``
    (n products x n tags); see the module docstring. Columns in order of decreasing support."""
    y = sparse.csc_matrix(y, dtype=np.float32)
    n = y.shape[0]
    if n == 0:
        return []
    support = np.asarray(y.sum(axis=0)).ravel()
    order = np.argsort(-support, kind="stable")
    order = order[support[order] >= min_support][:MAX_CANDIDATES]
    if len(order) < 2:
        return []
    sub = y[:, order]
    together = np.asarray((sub.T @ sub).todense())
    s = support[order]
    rarer = np.minimum(s[:, None], s[None, :])
    exclusive = (together <= max_overlap * rarer) & (np.outer(s, s) / n >= min_expected)
    np.fill_diagonal(exclusive, False)

    grouped = np.zeros(len(order), dtype=bool)
    groups: list[np.ndarray] = []
    for seed in range(len(order)):
        if grouped[seed]:
            continue
        members = [seed]
        compatible = exclusive[seed] & ~grouped
        while compatible.any():
            nxt = int(np.argmax(compatible))  # the most frequent tag that excludes every member so far
            members.append(nxt)
            compatible &= exclusive[nxt]
        if len(members) >= 2:
            grouped[members] = True
            groups.append(order[np.asarray(members)])
    return groups


def apply_group_rules(
    decided: np.ndarray, proba: np.ndarray, rules: Sequence[tuple[np.ndarray, str]]
) -> np.ndarray:
    """The decisions with each (group columns, rule) applied in turn (a copy; see the module docstring)."""
    decided = decided.copy()
    rows = np.arange(decided.shape[0])
    for columns, rule in rules:
        if rule not in GROUP_RULES:
            raise ValueError(f"unknown group rule {rule!r}; expected one of {', '.join(GROUP_RULES)}")
        best = columns[np.argmax(proba[:, columns], axis=1)]
        count = decided[:, columns].sum(axis=1)
        fix = count >= 2
        if rule == "exactly_one":  # a member with no score at all (not a candidate) is never forced in
            fix |= (count == 0) & (proba[rows, best] > 0)
        if not fix.any():
            continue
        fixed_rows = rows[fix]
        decided[np.ix_(fixed_rows, columns)] = False
        decided[fixed_rows, best[fix]] = True
    return decided


def choose_group_rules(
    y: sparse.spmatrix | np.ndarray,
    proba: np.ndarray,
    decided: np.ndarray,
    groups: Sequence[np.ndarray],
    *,
    n_missing: int = 0,
    min_changes: int = 3,
) -> list[tuple[np.ndarray, str]]:
    """Per group, the rule that maximises micro-F1 of ``decided`` on the held-out ``y``/``proba`` (groups
    in turn, each on the decisions the earlier rules left), kept only when it beats no rule and changes
    at least ``min_changes`` decisions. Returns the (columns, rule) pairs kept."""
    y = np.asarray(y.toarray() if sparse.issparse(y) else y).astype(bool)
    chosen: list[tuple[np.ndarray, str]] = []
    current = decided.copy()
    current_f = micro_f1_at(y, current, n_missing)
    for columns in groups:
        best: tuple[str, np.ndarray, float] | None = None
        for rule in GROUP_RULES:
            trial = apply_group_rules(current, proba, [(columns, rule)])
            changes = int((trial[:, columns] != current[:, columns]).sum())
            if changes < min_changes:
                continue
            f = micro_f1_at(y, trial, n_missing)
            if f > (best[2] if best is not None else current_f):
                best = (rule, trial, f)
        if best is not None:
            rule, current, current_f = best
            chosen.append((columns, rule))
    return chosen
