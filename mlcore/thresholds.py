"""Decision thresholds tuned on a validation slice to maximise micro-F1.

The global threshold is a grid search on micro-F1 (with the at-least-one-tag rule applied, as at predict
time). A tag with enough validation positives then gets its own threshold: with micro-F1 F* reached, a
single extra decision on tag t pays off when it is right with probability above F*/2, so per tag we pick
the cut maximising sum(y - F*/2) over the products above it, shrunk towards the global threshold in
proportion to how few positives back it. Per-tag cuts are kept only when they generalise: tuned on one
half of the slice and scored on the other (both ways), they must beat the global threshold there; in
the slice itself they always look better, and on calibrated scores they often lose on new products.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["apply_thresholds", "micro_f1_at", "tune_thresholds"]


def apply_thresholds(proba: np.ndarray, thresholds: np.ndarray, *, min_selected: int = 1) -> np.ndarray:
    """Boolean decisions: score >= threshold, plus the best tag of any product left with none."""
    decided = proba >= thresholds[None, :]
    if min_selected > 0 and proba.shape[1] > 0:
        empty = ~decided.any(axis=1)
        if empty.any():
            rows = np.flatnonzero(empty)
            decided[rows, proba[rows].argmax(axis=1)] = True
    return decided


def micro_f1_at(y: np.ndarray, decided: np.ndarray, n_missing: int = 0) -> float:
    tp = float(np.logical_and(y, decided).sum())
    denom = float(y.sum()) + n_missing + float(decided.sum())
    return 2 * tp / denom if denom else 0.0


def tune_thresholds(
    y: np.ndarray | sparse.spmatrix,
    proba: np.ndarray,
    *,
    min_support: int = 5,
    shrink: float = 10.0,
    min_selected: int = 1,
    n_missing: int = 0,
) -> tuple[float, np.ndarray, float]:
    """(global threshold, per-tag thresholds, validation micro-F1 with them).

    ``n_missing``: gold tags of the validation products that the model cannot predict (unseen tags),
    counted as false negatives so the tuned F1 is honest.
    """
    y = np.asarray(y.toarray() if sparse.issparse(y) else y).astype(bool)
    n_classes = proba.shape[1]
    grid = np.round(np.arange(0.04, 0.96, 0.02), 3)
    best_f, best_t = -1.0, 0.5
    for t in grid:
        f = micro_f1_at(
            y, apply_thresholds(proba, np.full(n_classes, t), min_selected=min_selected), n_missing
        )
        if f > best_f:
            best_f, best_t = f, float(t)
    thresholds = _per_tag(y, proba, best_t, best_f, min_support=min_support, shrink=shrink)
    if not _per_tag_generalises(y, proba, best_t, best_f, min_support, shrink, min_selected):
        thresholds[:] = best_t
    final_f = micro_f1_at(y, apply_thresholds(proba, thresholds, min_selected=min_selected), n_missing)
    if final_f < best_f:  # per-tag cuts did not help inside the slice itself: keep the global one
        thresholds[:] = best_t
        final_f = best_f
    return best_t, thresholds, final_f


def _per_tag(
    y: np.ndarray, proba: np.ndarray, best_t: float, best_f: float, *, min_support: int, shrink: float
) -> np.ndarray:
    thresholds = np.full(proba.shape[1], best_t, dtype=np.float32)
    cost = best_f / 2.0
    support = y.sum(axis=0)
    for j in np.flatnonzero(support >= min_support):
        col = proba[:, j]
        order = np.argsort(-col, kind="stable")
        gain = np.cumsum(y[order, j] - cost)
        k = int(np.argmax(gain))
        if gain[k] <= 0:
            own = float(col[order[0]]) + 1e-3
        else:
            nxt = float(col[order[k + 1]]) if k + 1 < len(order) else 0.0
            own = (float(col[order[k]]) + nxt) / 2.0
        weight = support[j] / (support[j] + shrink)
        thresholds[j] = np.float32(weight * own + (1 - weight) * best_t)
    return thresholds


def _per_tag_generalises(
    y: np.ndarray,
    proba: np.ndarray,
    best_t: float,
    best_f: float,
    min_support: int,
    shrink: float,
    min_selected: int,
) -> bool:
    """Two-fold check on the slice: do per-tag cuts tuned on one half beat the global cut on the other?"""
    n = y.shape[0]
    if n < 2 * min_support:
        return False
    halves = np.random.default_rng(0).permutation(n) % 2 == 0
    per_tag_tp = per_tag_sel = global_tp = global_sel = 0.0
    gold = 0.0
    for fit_rows in (halves, ~halves):
        held = ~fit_rows
        cuts = _per_tag(y[fit_rows], proba[fit_rows], best_t, best_f, min_support=min_support, shrink=shrink)
        decided = apply_thresholds(proba[held], cuts, min_selected=min_selected)
        base = apply_thresholds(proba[held], np.full(proba.shape[1], best_t), min_selected=min_selected)
        per_tag_tp += np.logical_and(y[held], decided).sum()
        per_tag_sel += decided.sum()
        global_tp += np.logical_and(y[held], base).sum()
        global_sel += base.sum()
        gold += y[held].sum()
    per_tag_f = 2 * per_tag_tp / max(1.0, gold + per_tag_sel)
    global_f = 2 * global_tp / max(1.0, gold + global_sel)
    return per_tag_f > global_f
