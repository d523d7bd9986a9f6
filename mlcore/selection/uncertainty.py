"""Per-product scores for the per-row strategies: closeness to the tag's decision threshold, and the expected
number of wrong decisions (what a review fixes in the catalog)."""

from __future__ import annotations

import numpy as np

from mlcore.selection.base import _blocks, _check_probs, _check_thresholds, _read_block
from mlcore.thresholds import apply_thresholds


def threshold_uncertainty(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per-cell closeness of ``p`` to its tag's decision threshold: 1 at the threshold, 0 at 0 or 1.

    A 0.5-centred uncertainty is wrong for a tagger whose tuned thresholds sit at 0.2-0.4: a 0.3 with
    threshold 0.3 is a coin flip for the *decision* the reviewer sees, a 0.5 is not.
    """
    return 1.0 - _threshold_distance(block, thresholds)


def _threshold_distance(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    # |p - t| / t below the threshold, |p - t| / (1 - t) above it; in place, float32 (hot path of rank()).
    thresholds = thresholds.astype(np.float32, copy=False)
    distance = block - thresholds
    scale = np.where(distance >= 0, 1.0 / (1.0 - thresholds), 1.0 / thresholds).astype(np.float32, copy=False)
    np.abs(distance, out=distance)
    distance *= scale
    return distance


def _threshold_max(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return 1.0 - _threshold_distance(block, thresholds).min(axis=1)


def row_uncertainty(
    probs: np.ndarray, *, thresholds: np.ndarray | float | None = None, rows: np.ndarray | None = None
) -> np.ndarray:
    """Per product: the largest per-tag closeness to threshold (see :func:`threshold_uncertainty`)."""
    _check_probs(probs)
    thr = _check_thresholds(thresholds, probs.shape[1])
    if rows is not None:
        return _threshold_max(np.asarray(probs[np.asarray(rows)], dtype=np.float32), thr)
    out = np.empty(probs.shape[0], dtype=np.float64)
    for start, stop in _blocks(probs.shape[0]):
        out[start:stop] = _threshold_max(_read_block(probs, start, stop), thr)
    return out


# --------------------------------------------------------------------------------------------------
# Expected wrong decisions: what reviewing a product fixes in the catalog
# --------------------------------------------------------------------------------------------------


def decisions(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The tagger's selected tags re-derived from its thresholds: ``p >= threshold``, and the best-scored
    tag of a product left with none (``min_selected=1``, :func:`mlcore.thresholds.apply_thresholds`).

    Only the fallback: the tagger's post-processing (top-k, hierarchy closure, exclusive tag groups) changes
    some of these, so callers that have its real decisions pass them as ``selected`` instead.
    """
    return apply_thresholds(block, thresholds, min_selected=1)


def wrong_decision_probability(
    block: np.ndarray, thresholds: np.ndarray, selected: np.ndarray | None = None
) -> np.ndarray:
    """Per cell, the probability that the tagger's decision is wrong, reading ``p`` as calibrated:
    a selected tag is wrong with ``1 - p``, a tag left out with ``p``.

    ``selected``: the tagger's real decisions for the block (boolean, same shape), what the catalog
    carries; without them they are re-derived from ``thresholds`` (:func:`decisions`), which disagrees
    with them wherever closure or an exclusive group overruled a threshold.
    """
    chosen = decisions(block, thresholds) if selected is None else np.asarray(selected, dtype=bool)
    if chosen.shape != block.shape:
        raise ValueError(f"selected has shape {chosen.shape} for a block of shape {block.shape}")
    return np.where(chosen, 1.0 - block, block).astype(np.float32, copy=False)


def expected_wrong_decisions(
    block: np.ndarray, thresholds: np.ndarray, selected: np.ndarray | None = None
) -> np.ndarray:
    """Per product, the expected number of wrong tag decisions: what a review of it fixes in the catalog.

    Ordering by it is the greedy order for catalog accuracy per review (each review turns that product's
    decisions into gold), whatever the review teaches the model. ``selected``: the decisions the catalog
    actually holds (see :func:`wrong_decision_probability`); the thresholds' decisions when None.
    """
    return wrong_decision_probability(block, thresholds, selected).sum(axis=1, dtype=np.float64)


def any_wrong_decision(
    block: np.ndarray, thresholds: np.ndarray, selected: np.ndarray | None = None
) -> np.ndarray:
    """Per product, the probability that at least one decision is wrong (tags taken as independent): the
    chance the reviewer has to change the card at all. ``selected`` as in :func:`expected_wrong_decisions`."""
    right = 1.0 - wrong_decision_probability(block, thresholds, selected).astype(np.float64)
    return 1.0 - np.prod(right, axis=1)
