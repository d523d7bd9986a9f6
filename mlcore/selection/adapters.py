"""The estimator adapters modAL's strategy functions see, and the calls into modAL.

This is the only module of :mod:`mlcore.selection` that imports modAL, always inside the functions that
need it: modAL pulls in torch and pandas (about 5 s on two cores) and a web process that only reads stored
priorities should not pay for that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlcore.selection.base import _check_thresholds


class StoredProbabilities:
    """A fitted-estimator stand-in over precomputed probabilities, for modAL's strategy functions.

    ``X`` passed to :meth:`predict_proba` / :meth:`predict` is a column (or vector) of row indices into
    ``probs``: modAL never looks inside ``X`` itself, it only hands it back to the estimator. ``classes_``
    is present (modAL's ``max_loss`` / ``mean_max_loss`` read it, which a bare ``ActiveLearner`` lacks
    upstream), ``predict`` returns the tagger's real decisions ``selected`` when given (its post-processing
    included; modAL's ``max_score`` / ``avg_score`` / ``max_loss`` read them) and otherwise applies per-tag
    ``thresholds``, and ``X_training`` / ``on_transformed`` are the two learner attributes
    ``modAL.batch.ranked_batch`` reads.
    """

    def __init__(
        self,
        probs: np.ndarray,
        *,
        classes: Sequence[Any] | None = None,
        thresholds: np.ndarray | float | None = None,
        X_training: np.ndarray | None = None,
        selected: np.ndarray | None = None,
    ) -> None:
        if probs.ndim != 2:
            raise ValueError(f"probs must be 2-D (products x tags), got shape {probs.shape}")
        self.probs = probs
        n_tags = probs.shape[1]
        self.classes_ = np.asarray(classes) if classes is not None else np.arange(n_tags)
        if len(self.classes_) != n_tags:
            raise ValueError(f"{len(self.classes_)} classes for {n_tags} probability columns")
        self.thresholds = _check_thresholds(thresholds, n_tags)
        if selected is not None and np.shape(selected) != probs.shape:
            raise ValueError(f"selected has shape {np.shape(selected)}; probs has {probs.shape}")
        self.selected = selected
        self.X_training = X_training
        self.on_transformed = False

    @staticmethod
    def index(n_rows: int) -> np.ndarray:
        """The ``X`` that stands for rows ``0 .. n_rows-1``."""
        return np.arange(n_rows).reshape(-1, 1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        rows = np.asarray(X).reshape(-1).astype(np.int64, copy=False)
        return np.asarray(self.probs[rows], dtype=np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.selected is not None:
            rows = np.asarray(X).reshape(-1).astype(np.int64, copy=False)
            return np.asarray(self.selected[rows], dtype=np.int8)
        return (self.predict_proba(X) >= self.thresholds).astype(np.int8)

    def fit(self, *args: Any, **kwargs: Any) -> StoredProbabilities:
        raise TypeError("StoredProbabilities only replays stored scores; train the tagger instead")


class BinaryTagView:
    """Each (product, tag) cell as its own binary problem ``[1 - p, p]``, for modAL's uncertainty measures.

    ``X`` is a column of row indices like :class:`StoredProbabilities`; ``predict_proba`` returns
    ``n_rows * n_tags`` two-column rows (product-major), so ``modAL.uncertainty.classifier_*`` give one
    value per cell that the caller reshapes to ``(n_rows, n_tags)`` and aggregates per product.
    """

    def __init__(self, probs: np.ndarray) -> None:
        self.probs = probs
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        rows = np.asarray(X).reshape(-1).astype(np.int64, copy=False)
        p = np.asarray(self.probs[rows], dtype=np.float32).reshape(-1)
        return np.stack([1.0 - p, p], axis=1)


def _modal_multilabel(function_name: str, higher_is_worse: bool) -> Callable[..., np.ndarray]:
    """Score a block with one of ``modAL.multilabel``'s strategies, keeping its utility for every row.

    Asking the modAL function for all ``n`` rows returns every row's utility (argpartition keeps the
    value with its index), so the full order comes from modAL itself rather than a re-implementation.
    """

    def score(block: np.ndarray, thresholds: np.ndarray, selected: np.ndarray | None = None) -> np.ndarray:
        from modAL import multilabel

        adapter = StoredProbabilities(block, thresholds=thresholds, selected=selected)
        strategy = getattr(multilabel, function_name)
        indices, utility = strategy(
            adapter, adapter.index(len(block)), n_instances=len(block), random_tie_break=False
        )
        values = np.empty(len(block), dtype=np.float64)
        values[np.asarray(indices)] = np.asarray(utility, dtype=np.float64)
        # min_confidence / mean_max_loss-style strategies query the smallest utility first.
        return values if higher_is_worse else -values

    return score


def _modal_binary(measure: str, aggregate: str) -> Callable[..., np.ndarray]:
    """Per-tag binary uncertainty / margin / entropy from ``modAL.uncertainty``, aggregated per product."""

    def score(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        from modAL import uncertainty

        view = BinaryTagView(block)
        X = StoredProbabilities.index(len(block))
        cells = getattr(uncertainty, f"classifier_{measure}")(view, X).reshape(block.shape)
        if measure == "margin":  # a small margin is the uncertain case
            return -cells.min(axis=1)
        return cells.max(axis=1) if aggregate == "max" else cells.sum(axis=1)

    return score


def _modal_multilabel_uncertainty(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    from modAL.uncertainty import classifier_uncertainty

    adapter = StoredProbabilities(block, thresholds=thresholds)
    return classifier_uncertainty(adapter, adapter.index(len(block)))


class _VectorKeyedProbabilities:
    """Adapter for ``uncertainty_batch_sampling``: X are candidate vectors; rows are found by position."""

    def __init__(self, vectors: np.ndarray, probs: np.ndarray, X_training: np.ndarray | None) -> None:
        self._vectors = vectors
        self._probs = probs
        self.classes_ = np.arange(probs.shape[1])
        self.X_training = X_training
        self.on_transformed = False

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if X is self._vectors:
            return self._probs
        raise ValueError("predict_proba is only defined for the candidate vectors it was built with")


def modal_ranked_batch(
    vectors: np.ndarray,
    utility: np.ndarray,
    n_instances: int,
    *,
    labeled_reference: np.ndarray | None = None,
) -> np.ndarray:
    """Order ``n_instances`` of ``vectors`` with ``modAL.batch.ranked_batch`` (Cardoso et al.).

    Each pick balances ``utility`` against distance to what is labelled or already picked, so a batch
    is not twenty variants of one product. Call it on a prefiltered candidate set only.
    """
    from modAL.batch import ranked_batch, select_cold_start_instance

    n_instances = min(n_instances, len(vectors))
    if n_instances <= 0:
        return np.empty(0, dtype=np.int64)
    utility = np.asarray(utility, dtype=np.float64).copy()
    first: list[int] = []
    if labeled_reference is None or len(labeled_reference) == 0:
        # modAL's own cold start picks the densest row but leaves it unmasked, so ranked_batch can pick it
        # a second time (a duplicate in the batch). Take that first pick here and rule it out explicitly.
        cold, labeled_reference = select_cold_start_instance(vectors, metric="euclidean", n_jobs=None)
        first = [int(cold)]
        utility[cold] = -1e9
        n_instances -= 1
    picked: list[int] = []
    if n_instances > 0:
        adapter = StoredProbabilities(
            np.zeros((len(vectors), 1), dtype=np.float32), X_training=labeled_reference
        )
        indices, _ = ranked_batch(
            adapter,
            unlabeled=vectors,
            uncertainty_scores=utility,
            n_instances=n_instances,
            metric="euclidean",
            n_jobs=None,
        )
        picked = [int(i) for i in indices]
    # Keep first occurrences only, whatever modAL returns.
    return np.asarray(list(dict.fromkeys(first + picked)), dtype=np.int64)


def modal_uncertainty_batch(
    vectors: np.ndarray, probs: np.ndarray, labeled_reference: np.ndarray | None, *, n_instances: int
) -> np.ndarray:
    """Positions in ``vectors`` picked by ``modAL.batch.uncertainty_batch_sampling`` (1 - max probability
    plus distance), ``probs`` being the stored rows of those candidates."""
    from modAL.batch import uncertainty_batch_sampling

    # The adapter maps the candidates' vectors back to their stored rows so modAL's own uncertainty
    # (1 - max probability) is computed; ranked batch then runs on those vectors.
    adapter = _VectorKeyedProbabilities(vectors, probs, labeled_reference)
    picked, _ = uncertainty_batch_sampling(adapter, vectors, n_instances=n_instances, metric="euclidean")
    # modAL's cold start can return its first pick twice (see modal_ranked_batch): first occurrences only.
    return np.asarray(list(dict.fromkeys(int(i) for i in picked)), dtype=np.int64)
