"""The strategy registry (name -> :class:`Strategy`), the default, and :func:`rank`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mlcore.selection.adapters import _modal_binary, _modal_multilabel
from mlcore.selection.base import (
    RankRequest,
    Selected,
    Strategy,
    _check_probs,
    _check_selected,
    _check_thresholds,
    _per_row,
    _priority_from_order,
)
from mlcore.selection.diversity import (
    _coverage_order,
    _dense_uncertain_order,
    _expected_errors_batch_order,
    _expected_errors_mixed_order,
    _gradient_embedding_order,
    _ranked_batch_order,
    _uncertainty_batch_order,
    _vocabulary_order,
)
from mlcore.selection.uncertainty import _threshold_max, any_wrong_decision, expected_wrong_decisions


def _random_order(request: RankRequest) -> np.ndarray:
    return request.rng.permutation(request.probs.shape[0])


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("random", "Uniformly random order (the control).", _random_order),
        Strategy(
            "min_confidence",
            "modAL multilabel.min_confidence: lowest smallest-tag probability first (Esuli & Sebastiani).",
            _per_row(_modal_multilabel("min_confidence", higher_is_worse=False)),
        ),
        Strategy(
            "avg_confidence",
            "modAL multilabel.avg_confidence: highest mean tag probability first (as upstream defines it).",
            _per_row(_modal_multilabel("avg_confidence", higher_is_worse=True)),
        ),
        Strategy(
            "max_score",
            "modAL multilabel.max_score: highest probability x (decision - 1/2), decisions at the thresholds.",
            _per_row(_modal_multilabel("max_score", higher_is_worse=True), uses_selected=True),
        ),
        Strategy(
            "avg_score",
            "modAL multilabel.avg_score: mean of probability x (decision - 1/2) over tags.",
            _per_row(_modal_multilabel("avg_score", higher_is_worse=True), uses_selected=True),
        ),
        Strategy(
            "max_loss",
            "modAL multilabel.max_loss (Li et al.), working here because the adapter has classes_ and predict.",
            _per_row(_modal_multilabel("max_loss", higher_is_worse=True), uses_selected=True),
        ),
        Strategy(
            "mean_max_loss",
            "modAL multilabel.mean_max_loss (Li et al.); O(tags^2) per product, for small tag sets.",
            _per_row(_modal_multilabel("mean_max_loss", higher_is_worse=True), uses_selected=True),
        ),
        Strategy(
            "binary_uncertainty",
            "modAL classifier_uncertainty per tag as a binary problem; the product's most uncertain tag.",
            _per_row(_modal_binary("uncertainty", "max")),
        ),
        Strategy(
            "binary_margin",
            "modAL classifier_margin per tag as a binary problem; the product's smallest margin.",
            _per_row(_modal_binary("margin", "min")),
        ),
        Strategy(
            "binary_entropy",
            "modAL classifier_entropy per tag as a binary problem, summed over the product's tags.",
            _per_row(_modal_binary("entropy", "sum")),
        ),
        Strategy(
            "binary_uncertainty_sum",
            "modAL classifier_uncertainty per tag as a binary problem, summed over the product's tags.",
            _per_row(_modal_binary("uncertainty", "sum")),
        ),
        Strategy(
            "expected_errors",
            "Expected number of wrong tag decisions (selected: 1 - p, left out: p; the tagger's stored decisions, "
            "else its thresholds): "
            "what a review fixes in the catalog.",
            _per_row(expected_wrong_decisions, uses_selected=True),
        ),
        Strategy(
            "any_error",
            "Probability that at least one tag decision on the product is wrong (the card needs a change).",
            _per_row(any_wrong_decision, uses_selected=True),
        ),
        Strategy(
            "expected_errors_batch",
            "Expected wrong decisions as the utility of modAL batch.ranked_batch over the top candidates.",
            _expected_errors_batch_order,
            uses_features=True,
        ),
        Strategy(
            "expected_errors_mixed",
            "Default: expected wrong decisions first, with 25% of each batch uniformly random.",
            _expected_errors_mixed_order,
        ),
        Strategy(
            "threshold_uncertainty",
            "Closest per-tag probability to that tag's decision threshold.",
            _per_row(_threshold_max),
        ),
        Strategy(
            "uncertainty_batch",
            "modAL batch.uncertainty_batch_sampling (1 - max probability + distance) on the top candidates.",
            _uncertainty_batch_order,
            uses_features=True,
        ),
        Strategy(
            "ranked_batch",
            "Threshold uncertainty, then modAL batch.ranked_batch over the top candidates for diversity.",
            _ranked_batch_order,
            uses_features=True,
        ),
        Strategy(
            "dense_uncertain",
            "Density-weighted threshold uncertainty + modAL ranked batch + 25% random picks.",
            _dense_uncertain_order,
            uses_features=True,
        ),
        Strategy(
            "vocabulary",
            "Greedy coverage of frequent words no labelled product has yet (needs texts) + 25% random.",
            _vocabulary_order,
            uses_features=True,
        ),
        Strategy(
            "gradient_embedding",
            "BADGE: k-means++ over loss-gradient embeddings (uncertain and mutually different products).",
            _gradient_embedding_order,
            uses_features=True,
        ),
        Strategy(
            "coverage",
            "Typical products of the clusters with the most products per label (TypiClust-style), "
            "uncertainty-weighted; pass texts or features.",
            _coverage_order,
            uses_features=True,
        ),
    ]
}

# Chosen by the catalog measure (bench/README.md, simulation section): what a review is for is a correctly
# tagged catalog, and reviewing the products with the most expected wrong decisions fixes the most of it.
# Explored with bench/simulate_compare.py (default tagger, one seed, pool 2,000): on amazon_uk_toys it reached
# half the seed catalog error at 400 labels (expected_errors, coverage, any_error and random: 500), on
# myntra_fashion_attrs at 400 (the expected-errors family; coverage and random 500). The random quarter
# keeps the reviewed set (where the tagger tunes thresholds and blend) a picture of the catalog.
# Before the catalog view it was "coverage", chosen on the model's learning curve (a little ahead of random).
DEFAULT_STRATEGY = "expected_errors_mixed"


def rank(
    probs: np.ndarray,
    *,
    strategy: str = DEFAULT_STRATEGY,
    features: np.ndarray | None = None,
    labeled_features: np.ndarray | None = None,
    texts: Callable[[np.ndarray], Sequence[str]] | Sequence[str] | None = None,
    labeled_texts: Sequence[str] | None = None,
    thresholds: np.ndarray | float | None = None,
    batch_size: int = 20,
    seed: int = 0,
    selected: Selected | None = None,
) -> np.ndarray:
    """Priority per product (row of ``probs``): higher = review first; unique values in ``(0, 1]``.

    ``probs``: (products, tags) probabilities of the active model, columns in the tagger's ``classes_``
    order; a numpy array, a memory map or anything with ``shape`` and row slicing (it is read in blocks).
    ``thresholds``: the tagger's per-tag decision thresholds (scalar or one per column; 0.5 if None).
    ``selected``: the tagger's real decisions, aligned with ``probs`` (boolean array, scipy sparse matrix or
    anything row-sliceable; read in the same blocks): what the catalog carries. Strategies that score
    the model's decisions (expected/any wrong decision, modAL's score and loss strategies, BADGE) use them;
    without them they re-derive decisions as ``p >= threshold``, which misses the tagger's post-processing
    (top-k, hierarchy closure, exclusive tag groups). Closeness-to-threshold strategies ignore them.
    ``features``: optional per-product vectors (e.g. sentence embeddings) for the diversity strategies,
    only indexed at a few thousand candidate rows; without them the probability rows serve.
    ``labeled_features``: optional vectors of already-reviewed products (same space as ``features``), so a
    batch also avoids what is already labelled. ``texts``: instead of features, the product texts, as a
    sequence aligned with the rows or a callable ``texts(row_indices) -> list[str]`` (only called for a few
    thousand rows, so the app can load them lazily); ``labeled_texts``: texts of reviewed products (a
    sample is enough; at most 500 are used). ``batch_size``: how many products the next review batch
    has (the app's retrain threshold): batch strategies diversify that many, rows after it follow by score.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    _check_probs(probs)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n_rows = probs.shape[0]
    if features is not None and len(features) != n_rows:
        raise ValueError(f"features has {len(features)} rows for {n_rows} probability rows")
    if texts is not None and not callable(texts) and len(texts) != n_rows:
        raise ValueError(f"texts has {len(texts)} entries for {n_rows} probability rows")
    if n_rows == 0:
        return np.empty(0, dtype=np.float64)
    request = RankRequest(
        probs=probs,
        thresholds=_check_thresholds(thresholds, probs.shape[1]),
        features=features,
        labeled_features=labeled_features,
        texts=texts,
        labeled_texts=labeled_texts,
        batch_size=batch_size,
        rng=np.random.default_rng(seed),
        selected=_check_selected(selected, probs.shape),
    )
    # One BLAS/OpenMP thread: the matrices here are small, and on a busy machine OpenBLAS's spinning worker
    # threads made a 500x500 eigh 60x slower (7.5 s instead of 0.13 s on the shared 2-core box).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        order = STRATEGIES[strategy].order(request)
    placed = np.bincount(order, minlength=n_rows) if len(order) else np.zeros(n_rows, dtype=np.int64)
    if len(order) != n_rows or not (placed == 1).all():  # a strategy must place every row exactly once
        raise RuntimeError(f"strategy {strategy!r} returned an order of {len(order)} rows for {n_rows}")
    return _priority_from_order(order)
