"""The tag hierarchy as the default tagger's blend sees it: one parent column per tag (or -1).

A taxonomy with parents gives it; without one it is learned from the labels: tag ``a``'s parent is the
most specific tag ``b`` that (almost) always comes with it (``b`` on at least ``min_share`` of ``a``'s
products and at least as frequent), which recovers category paths (``apparel > bottomwear > skirts``)
from the tags alone. The blend then reads, for a (product, tag) pair, the score of the tag's parent, the
best score among its children and the best among its siblings: a child implies its parent, a parent is
likely when one child is, siblings compete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse

__all__ = ["hierarchy_features", "learn_parents", "parents_from_map"]


def parents_from_map(classes: Sequence[str], parents: Mapping[str, str | None]) -> np.ndarray:
    """Parent column per class from a tag -> parent map (-1: root, or a parent that is not a class)."""
    col = {t: j for j, t in enumerate(classes)}
    out = np.full(len(classes), -1, dtype=np.int64)
    for j, tag in enumerate(classes):
        parent = parents.get(tag)
        if parent is not None and parent in col and col[parent] != j:
            out[j] = col[parent]
    return out


def learn_parents(y: sparse.spmatrix, *, min_support: int = 2, min_share: float = 0.95) -> np.ndarray:
    """Parent column per class learned from co-occurrence in the 0/1 label matrix ``y`` (n, n_classes).

    ``b`` is a candidate parent of ``a`` when ``a`` has at least ``min_support`` products, ``b`` is on at
    least ``min_share`` of them and ``(support(b), b) > (support(a), a)``: that order makes the result a
    forest (no cycles, also for two tags that always come together). The most specific candidate (least
    support) wins.
    """
    y = sparse.csc_matrix(y, dtype=np.float32)
    n_classes = y.shape[1]
    parent = np.full(n_classes, -1, dtype=np.int64)
    if n_classes == 0:
        return parent
    support = np.asarray(y.sum(axis=0)).ravel()
    co = (y.T @ y).tocsr()
    for a in np.flatnonzero(support >= min_support):
        start, end = co.indptr[a], co.indptr[a + 1]
        cols, counts = co.indices[start:end], co.data[start:end]
        best, best_support = -1, np.inf
        for b, c in zip(cols, counts):
            if b == a or c < min_share * support[a]:
                continue
            if (support[b], b) <= (support[a], a):
                continue
            if support[b] < best_support:
                best, best_support = int(b), support[b]
        parent[a] = best
    return parent


def hierarchy_features(base: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(parent score, best child score, best sibling score), each (n, n_classes), from ``base`` scores.

    Missing relatives score 0 (a root has no parent, a leaf no child, an only child no sibling).
    """
    n, n_classes = base.shape
    parent_score = np.zeros_like(base)
    child_max = np.zeros_like(base)
    sibling_max = np.zeros_like(base)
    has_parent = parent >= 0
    parent_score[:, has_parent] = base[:, parent[has_parent]]
    groups: dict[int, list[int]] = {}
    for j in np.flatnonzero(has_parent):
        groups.setdefault(int(parent[j]), []).append(int(j))
    for p, members in groups.items():
        block = base[:, members]
        child_max[:, p] = block.max(axis=1)
        if len(members) < 2:
            continue
        # Best sibling of each member: the group's best, or its second best for the member that is best.
        top2 = -np.partition(-block, 1, axis=1)[:, :2]
        first, second = top2[:, 0:1], top2[:, 1:2]
        is_best = block >= first
        sibling_max[:, members] = np.where(is_best, second, first)
    return parent_score, child_max, sibling_max
