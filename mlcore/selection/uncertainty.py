"""Per-product uncertainty scores for the per-row strategies: closeness to the tag's decision threshold."""

from __future__ import annotations

import numpy as np

from mlcore.selection.base import _blocks, _check_probs, _check_thresholds, _read_block


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
