"""Shared machinery of the strategies: input checks, block-wise scoring, seeded ordering, priorities,
and the request/strategy types the registry passes around."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

# The tagger's real per-cell decisions (what the catalog carries for an unreviewed product), aligned with ``probs``: a boolean
# array, a scipy sparse matrix, or anything with ``shape`` and row slicing. Post-processing (top-k,
# hierarchy closure, exclusive tag groups) makes them differ from ``p >= threshold`` on some cells, so
# strategies that score "the model's decision" read these when given and re-derive them only as a fallback.
Selected = Any

# Rows scored per block: keeps the temporaries of a 500-tag float32 block near 16 MB whatever the catalog
# size (measured peak RSS ranking 1M x 500: 1.04 GB with 8,192-row blocks, 1.08 GB with 32,768), and lets ``probs`` be a memory map or any row-sliceable store instead of one resident array.
ROW_BLOCK = 8_192
SCORE_THREADS = max(1, min(4, os.cpu_count() or 1))


def _check_thresholds(thresholds: np.ndarray | float | None, n_tags: int) -> np.ndarray:
    if thresholds is None:
        return np.full(n_tags, 0.5, dtype=np.float32)
    values = np.broadcast_to(np.asarray(thresholds, dtype=np.float32), (n_tags,)).copy()
    bad = np.flatnonzero(~((values > 0) & (values < 1)))
    if bad.size:
        raise ValueError(
            f"thresholds must lie strictly between 0 and 1; tag column {bad[0]} has {values[bad[0]]}"
        )
    return values


def _check_probs(probs: np.ndarray) -> None:
    if len(probs.shape) != 2:
        raise ValueError(f"probs must be 2-D (products x tags), got shape {probs.shape}")
    if probs.shape[1] == 0:
        raise ValueError("probs has no tag columns")


def _check_selected(selected: Selected | None, shape: tuple[int, ...]) -> Selected | None:
    if selected is None:
        return None
    if not hasattr(selected, "shape"):  # nested lists
        selected = np.asarray(selected, dtype=bool)
    if tuple(selected.shape) != tuple(shape):
        raise ValueError(f"selected has shape {tuple(selected.shape)}; probs has {tuple(shape)}")
    return selected


def _as_bool(rows: Any) -> np.ndarray:
    # Sparse blocks (CSR rows of the stored decisions) become dense only per block of rows.
    dense = rows.toarray() if hasattr(rows, "toarray") else rows
    return np.asarray(dense, dtype=bool)


def _read_selected(selected: Selected, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the decisions as a dense boolean block."""
    return _as_bool(selected[start:stop])


def _selected_rows(selected: Selected, rows: np.ndarray) -> np.ndarray:
    """The decisions of scattered ``rows`` (a few thousand candidates) as a dense boolean array."""
    return _as_bool(selected[np.asarray(rows, dtype=np.int64)])


def _blocks(n_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + ROW_BLOCK, n_rows)) for start in range(0, n_rows, ROW_BLOCK)]


def _read_block(probs: np.ndarray, start: int, stop: int) -> np.ndarray:
    block = np.asarray(probs[start:stop], dtype=np.float32)
    if block.size and not (block.min() >= 0 and block.max() <= 1):  # NaN fails both comparisons
        bad_row, bad_col = np.argwhere(~((block >= 0) & (block <= 1)))[0]
        raise ValueError(
            f"probs row {start + bad_row}, tag column {bad_col}: {block[bad_row, bad_col]!r} is not a probability"
        )
    return block


def _scores(
    probs: np.ndarray,
    scorer: Callable[..., np.ndarray],
    thresholds: np.ndarray,
    selected: Selected | None = None,
) -> np.ndarray:
    """``scorer`` over row blocks, on a few threads (numpy releases the GIL in the per-cell arithmetic).

    With ``selected``, the scorer also gets the block's decisions as ``selected=`` (only decision-aware
    scorers are called with it).
    """
    out = np.empty(probs.shape[0], dtype=np.float64)

    def score_block(bounds: tuple[int, int]) -> None:
        start, stop = bounds
        block = _read_block(probs, start, stop)
        if selected is None:
            out[start:stop] = scorer(block, thresholds)
        else:
            out[start:stop] = scorer(block, thresholds, selected=_read_selected(selected, start, stop))

    blocks = _blocks(probs.shape[0])
    if len(blocks) == 1 or SCORE_THREADS == 1:
        for bounds in blocks:
            score_block(bounds)
    else:
        with ThreadPoolExecutor(max_workers=SCORE_THREADS) as pool:
            list(pool.map(score_block, blocks))
    return out


def _order_by(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices by descending score; ties broken at random (seeded) rather than by row number."""
    shuffled = rng.permutation(len(scores))
    return shuffled[np.argsort(-scores[shuffled], kind="stable")]


def _priority_from_order(order: np.ndarray) -> np.ndarray:
    n = len(order)
    priority = np.empty(n, dtype=np.float64)
    priority[order] = 1.0 - np.arange(n, dtype=np.float64) / max(n, 1)
    return priority


def review_order(priority: np.ndarray) -> np.ndarray:
    """Row indices in review order (highest priority first) for a priority vector from :func:`rank`."""
    return np.argsort(-np.asarray(priority), kind="stable")


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class RankRequest:
    """Everything a strategy may use; built and validated by :func:`rank`."""

    probs: np.ndarray
    thresholds: np.ndarray
    features: np.ndarray | None
    labeled_features: np.ndarray | None
    texts: Callable[[np.ndarray], Sequence[str]] | Sequence[str] | None
    labeled_texts: Sequence[str] | None
    batch_size: int
    rng: np.random.Generator
    # The tagger's stored decisions (see ``Selected``); None: re-derived from ``thresholds``.
    selected: Selected | None = None


@dataclass(frozen=True)
class Strategy:
    """A named way to order the review queue; ``order(request)`` returns every row index once."""

    name: str
    description: str
    order: Callable[[RankRequest], np.ndarray]
    uses_features: bool = False


def _per_row(
    scorer: Callable[..., np.ndarray], *, uses_selected: bool = False
) -> Callable[[RankRequest], np.ndarray]:
    """A strategy ordering rows by ``scorer``; ``uses_selected``: the scorer takes ``selected=`` (the
    tagger's real decisions) and gets them whenever the request carries them."""

    def order(request: RankRequest) -> np.ndarray:
        selected = request.selected if uses_selected else None
        return _order_by(_scores(request.probs, scorer, request.thresholds, selected), request.rng)

    return order


def _batch_first(batch: np.ndarray, rest_order: np.ndarray) -> np.ndarray:
    """The batch in its ranked order, then every other row in ``rest_order``."""
    taken = np.zeros(len(rest_order), dtype=bool)
    taken[batch] = True
    return np.concatenate([batch, rest_order[~taken[rest_order]]])


def _interleave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spread ``second`` evenly through ``first`` so any prefix of the batch has its share of both."""
    total = len(first) + len(second)
    if not len(second):
        return first
    slots = np.zeros(total, dtype=bool)
    # Spacing total / len(second) >= 1, so the slots are distinct.
    slots[np.floor((np.arange(len(second)) + 0.5) * total / len(second)).astype(np.int64)] = True
    out = np.empty(total, dtype=np.int64)
    out[slots] = second
    out[~slots] = first
    return out
