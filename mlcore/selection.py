"""Review-queue ordering: modAL query strategies over stored per-tag probabilities.

This is the only module that imports modAL. The app never keeps a modAL learner: after every suggestion
refresh it hands the stored probabilities (one row per pending product, one column per tag) to
:func:`rank`, which runs modAL's query-strategy functions through :class:`StoredProbabilities`, a thin
estimator adapter whose ``X`` is a column of row indices into those probabilities.

:func:`rank` returns a **priority per row**: ``1 - position / n`` where ``position`` is the row's place in
the review order, so priorities are unique, lie in ``(0, 1]`` and higher means review first
(``np.argsort(-priority, kind="stable")`` or :func:`review_order` gives the order back). Store it
indexed; claiming the next product is then a keyed lookup.

modAL is imported inside the functions that need it: it pulls in torch and pandas (about 5 s on two
cores) and a web process that only reads stored priorities should not pay for that.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "BinaryTagView",
    "StoredProbabilities",
    "Strategy",
    "cold_start_rank",
    "rank",
    "review_order",
    "row_uncertainty",
    "text_features",
]

# Rows scored per block: keeps the temporaries of a 500-tag float32 block near 16 MB whatever the catalog
# size (measured peak RSS ranking 1M x 500: 1.04 GB with 8,192-row blocks, 1.08 GB with 32,768), and lets ``probs`` be a memory map or any row-sliceable store instead of one resident array.
ROW_BLOCK = 8_192
SCORE_THREADS = max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------------
# The estimator adapters modAL's strategy functions see
# --------------------------------------------------------------------------------------------------


class StoredProbabilities:
    """A fitted-estimator stand-in over precomputed probabilities, for modAL's strategy functions.

    ``X`` passed to :meth:`predict_proba` / :meth:`predict` is a column (or vector) of row indices into
    ``probs``: modAL never looks inside ``X`` itself, it only hands it back to the estimator. ``classes_``
    is present (modAL's ``max_loss`` / ``mean_max_loss`` read it, which a bare ``ActiveLearner`` lacks
    upstream), ``predict`` applies per-tag ``thresholds``, and ``X_training`` / ``on_transformed`` are the
    two learner attributes ``modAL.batch.ranked_batch`` reads.
    """

    def __init__(
        self,
        probs: np.ndarray,
        *,
        classes: Sequence[Any] | None = None,
        thresholds: np.ndarray | float | None = None,
        X_training: np.ndarray | None = None,
    ) -> None:
        if probs.ndim != 2:
            raise ValueError(f"probs must be 2-D (products x tags), got shape {probs.shape}")
        self.probs = probs
        n_tags = probs.shape[1]
        self.classes_ = np.asarray(classes) if classes is not None else np.arange(n_tags)
        if len(self.classes_) != n_tags:
            raise ValueError(f"{len(self.classes_)} classes for {n_tags} probability columns")
        self.thresholds = _check_thresholds(thresholds, n_tags)
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


# --------------------------------------------------------------------------------------------------
# Per-product scores (higher = more worth reviewing), computed block by block
# --------------------------------------------------------------------------------------------------


def _modal_multilabel(function_name: str, higher_is_worse: bool) -> Callable[..., np.ndarray]:
    """Score a block with one of ``modAL.multilabel``'s strategies, keeping its utility for every row.

    Asking the modAL function for all ``n`` rows returns every row's utility (argpartition keeps the
    value with its index), so the full order comes from modAL itself rather than a re-implementation.
    """

    def score(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        from modAL import multilabel

        adapter = StoredProbabilities(block, thresholds=thresholds)
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


def _scores(probs: np.ndarray, scorer: Callable[..., np.ndarray], thresholds: np.ndarray) -> np.ndarray:
    """``scorer`` over row blocks, on a few threads (numpy releases the GIL in the per-cell arithmetic)."""
    out = np.empty(probs.shape[0], dtype=np.float64)

    def score_block(bounds: tuple[int, int]) -> None:
        start, stop = bounds
        out[start:stop] = scorer(_read_block(probs, start, stop), thresholds)

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


# --------------------------------------------------------------------------------------------------
# Diversity: representations, density, modAL ranked batch
# --------------------------------------------------------------------------------------------------

# Ranked batch's cost is (candidates x (labelled reference + picks) x dims) per pick (upstream #38/#133):
# reduce the space and bound both sets so a pass stays around a second on two cores.
DIVERSITY_DIMS = 32
MAX_LABELED_REFERENCE = 500
DENSITY_REFERENCE = 2_000
DENSITY_NEIGHBOURS = 10


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _representation(request: RankRequest, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """Unit-length, at most ``DIVERSITY_DIMS``-dimensional vectors for ``rows`` (and the labelled reference).

    In order of preference: the caller's ``features`` (e.g. sentence embeddings); TF-IDF of the product
    ``texts`` (words, jieba for Chinese, and character n-grams; fitted here on these rows and the labelled
    texts together, so both live in one space); else the product's own probability row (square root, so a
    few confident tags do not drown everything else). The projection is returned for mapping more rows.
    """
    reference = None
    if request.features is not None:
        vectors = np.asarray(request.features[rows], dtype=np.float32)
        if request.labeled_features is not None and len(request.labeled_features):
            reference = np.asarray(request.labeled_features, dtype=np.float32)
    elif request.texts is not None:
        row_texts = list(request.texts(rows) if callable(request.texts) else [request.texts[i] for i in rows])
        labeled = list(request.labeled_texts or [])
        if len(labeled) > MAX_LABELED_REFERENCE:
            labeled = [
                labeled[i] for i in request.rng.choice(len(labeled), MAX_LABELED_REFERENCE, replace=False)
            ]
        both = text_features(row_texts + labeled, dims=4 * DIVERSITY_DIMS)
        vectors = both[: len(row_texts)]
        reference = both[len(row_texts) :] if labeled else None
    else:
        vectors = np.sqrt(np.asarray(request.probs[rows], dtype=np.float32))
    projection = _principal_axes(vectors)
    if projection is not None:
        vectors = vectors @ projection
        if reference is not None:
            reference = reference @ projection
    if reference is not None:
        reference = _unit_rows(reference).astype(np.float32)
    return _unit_rows(vectors).astype(np.float32), reference, projection


def _principal_axes(vectors: np.ndarray) -> np.ndarray | None:
    """The top ``DIVERSITY_DIMS`` right singular vectors, from the eigenvectors of the (dims x dims) Gram
    matrix: exact, deterministic and ~10x cheaper than a randomized SVD at these shapes."""
    if vectors.shape[1] <= DIVERSITY_DIMS or len(vectors) <= DIVERSITY_DIMS:
        return None
    gram = vectors.T.astype(np.float64) @ vectors.astype(np.float64)
    _, eigenvectors = np.linalg.eigh(gram)
    return eigenvectors[:, ::-1][:, :DIVERSITY_DIMS].astype(np.float32)


def _density(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of each vector to its nearest neighbours in a sample of the whole pool.

    Weighting uncertainty by this (information density, Settles & Craven 2008) keeps the queue off outliers
    and one-off listings, which is where plain uncertainty goes on long-tailed catalogs.
    """
    k = min(DENSITY_NEIGHBOURS, len(reference))
    similarity = vectors @ reference.T
    nearest = np.partition(-similarity, k - 1, axis=1)[:, :k]
    return np.clip(-nearest.mean(axis=1), 0.0, None)


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


# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Strategy:
    """A named way to order the review queue; ``order(request)`` returns every row index once."""

    name: str
    description: str
    order: Callable[[RankRequest], np.ndarray]
    uses_features: bool = False


def _per_row(scorer: Callable[..., np.ndarray]) -> Callable[[RankRequest], np.ndarray]:
    def order(request: RankRequest) -> np.ndarray:
        return _order_by(_scores(request.probs, scorer, request.thresholds), request.rng)

    return order


def _random_order(request: RankRequest) -> np.ndarray:
    return request.rng.permutation(request.probs.shape[0])


def _candidate_count(n_rows: int, batch_size: int) -> int:
    return min(n_rows, max(10 * batch_size, 1_000))


def _uncertainty_batch_order(request: RankRequest) -> np.ndarray:
    """modAL's ``uncertainty_batch_sampling`` verbatim (1 - max probability) on the top candidates."""
    from modAL.batch import uncertainty_batch_sampling

    probs = request.probs
    n = probs.shape[0]
    uncertainty = _scores(probs, _modal_multilabel_uncertainty, request.thresholds)
    by_uncertainty = _order_by(uncertainty, request.rng)
    candidates = by_uncertainty[: _candidate_count(n, request.batch_size)]
    vectors, reference, _ = _representation(request, candidates)
    # The adapter maps the candidates' vectors back to their stored rows so modAL's own uncertainty
    # (1 - max probability) is computed; ranked batch then runs on those vectors.
    adapter = _VectorKeyedProbabilities(vectors, np.asarray(probs[candidates], dtype=np.float32), reference)
    picked, _ = uncertainty_batch_sampling(
        adapter, vectors, n_instances=min(request.batch_size, len(candidates)), metric="euclidean"
    )
    # modAL's cold start can return its first pick twice (see modal_ranked_batch): first occurrences only.
    picked = np.asarray(list(dict.fromkeys(int(i) for i in picked)), dtype=np.int64)
    return _batch_first(candidates[picked], by_uncertainty)


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


def _batch_first(batch: np.ndarray, rest_order: np.ndarray) -> np.ndarray:
    """The batch in its ranked order, then every other row in ``rest_order``."""
    taken = np.zeros(len(rest_order), dtype=bool)
    taken[batch] = True
    return np.concatenate([batch, rest_order[~taken[rest_order]]])


def _ranked_batch_order(request: RankRequest) -> np.ndarray:
    """Threshold-relative uncertainty, then modAL's ranked batch over the top candidates."""
    probs = request.probs
    uncertainty = _scores(probs, _threshold_max, request.thresholds)
    by_uncertainty = _order_by(uncertainty, request.rng)
    candidates = by_uncertainty[: _candidate_count(probs.shape[0], request.batch_size)]
    vectors, reference, _ = _representation(request, candidates)
    reference = _cap_reference(reference, request.rng)
    picked = modal_ranked_batch(
        vectors, uncertainty[candidates], request.batch_size, labeled_reference=reference
    )
    return _batch_first(candidates[picked], by_uncertainty)


def _cap_reference(reference: np.ndarray | None, rng: np.random.Generator) -> np.ndarray | None:
    if reference is None or len(reference) <= MAX_LABELED_REFERENCE:
        return reference
    return reference[rng.choice(len(reference), MAX_LABELED_REFERENCE, replace=False)]


# The default's knobs, measured with bench/simulate_all.py (see bench/README.md).
DEFAULT_RANDOM_SHARE = 0.25
DEFAULT_DENSITY_POWER = 1.0


def _dense_uncertain_order(request: RankRequest) -> np.ndarray:
    """The product default: density-weighted threshold uncertainty, diversified by modAL's ranked batch,
    with a share of random picks.

    1. every product gets its threshold-relative uncertainty (one streaming pass over the rows);
    2. the top candidates by it are re-weighted by their density in the pool, so outliers and
       one-off listings (where plain uncertainty goes on long-tailed catalogs) drop back;
    3. modAL's ranked batch orders the first batch among the candidates so it spreads over the space;
    4. a quarter of each batch is uniformly random over the pool: it keeps the model's picture of the
       whole catalog unbiased (the tagger's thresholds are tuned on what gets reviewed) and bounds the
       loss when uncertainty is miscalibrated.
    After the batch, rows follow by the same weighted score (candidates) then by uncertainty.
    """
    probs = request.probs
    n = probs.shape[0]
    rng = request.rng
    uncertainty = _scores(probs, _threshold_max, request.thresholds)
    by_uncertainty = _order_by(uncertainty, rng)
    n_candidates = _candidate_count(n, request.batch_size)
    candidates = by_uncertainty[:n_candidates]
    pool_sample = rng.choice(n, size=min(n, DENSITY_REFERENCE), replace=False)
    rows = np.concatenate([candidates, pool_sample])
    vectors, reference, projection = _representation(request, rows)
    candidate_vectors, sample_vectors = vectors[:n_candidates], vectors[n_candidates:]
    weighted = uncertainty[candidates] * _density(candidate_vectors, sample_vectors) ** DEFAULT_DENSITY_POWER
    by_weighted = np.lexsort((rng.random(n_candidates), -weighted))

    n_random = int(round(DEFAULT_RANDOM_SHARE * request.batch_size))
    n_ranked = max(request.batch_size - n_random, 0)
    # Ranked batch on the best-weighted part of the candidates only: its alpha leans on distance, and
    # restricting it to dense, uncertain rows keeps that distance term from reaching for outliers.
    shortlist = by_weighted[: min(n_candidates, max(5 * n_ranked, 1))]
    reference = _cap_reference(reference, rng)
    picked_local = modal_ranked_batch(
        candidate_vectors[shortlist], weighted[shortlist], n_ranked, labeled_reference=reference
    )
    ranked = candidates[shortlist[picked_local]]
    taken = np.zeros(n, dtype=bool)
    taken[ranked] = True
    random_picks = rng.permutation(np.flatnonzero(~taken))[:n_random]
    taken[random_picks] = True
    batch = _interleave(ranked, random_picks)
    rest_candidates = candidates[by_weighted]
    rest_candidates = rest_candidates[~taken[rest_candidates]]
    taken[rest_candidates] = True
    rest = by_uncertainty[~taken[by_uncertainty]]
    return np.concatenate([batch, rest_candidates, rest])


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


COVERAGE_SAMPLE = 5_000
MAX_COVERAGE_CLUSTERS = 400


def _coverage_order(request: RankRequest) -> np.ndarray:
    """Typical products of the clusters the labelled set covers least (TypiClust, Hacohen et al. 2022).

    The pool (a seeded sample of it on large catalogs) and the labelled reference are clustered together
    into ``labelled + batch`` clusters (at most 400); clusters with the most unlabelled products per
    labelled one come first (so uncovered big clusters lead), and from each the most typical unlabelled product (highest density among its neighbours), weighted by
    its threshold uncertainty so a cluster the model already gets right yields its most doubtful member.
    At low budgets coverage of dense regions beats uncertainty, which chases outliers and label noise.
    """
    from sklearn.cluster import MiniBatchKMeans

    probs = request.probs
    n = probs.shape[0]
    rng = request.rng
    uncertainty = _scores(probs, _threshold_max, request.thresholds)
    by_uncertainty = _order_by(uncertainty, rng)
    sample = np.sort(rng.choice(n, size=min(n, COVERAGE_SAMPLE), replace=False))
    vectors, reference, _ = _representation(request, sample)
    reference = _cap_reference(reference, rng)
    n_ref = 0 if reference is None else len(reference)
    space = vectors if reference is None else np.vstack([vectors, reference])
    k = int(min(MAX_COVERAGE_CLUSTERS, n_ref + request.batch_size, len(vectors)))
    labels = MiniBatchKMeans(n_clusters=max(k, 1), random_state=0, n_init=1, batch_size=2048).fit_predict(
        space
    )
    pool_labels, ref_labels = labels[: len(vectors)], labels[len(vectors) :]
    covered = np.bincount(ref_labels, minlength=k)
    size = np.bincount(pool_labels, minlength=k)
    density = _density(
        vectors, vectors[rng.choice(len(vectors), min(len(vectors), DENSITY_REFERENCE), replace=False)]
    )
    weight = density * (0.5 + uncertainty[sample])
    # Clusters by unlabelled mass per label they already have: uncovered big clusters first, then labels
    # go where the catalog has the most products per label (micro-F1 weighs products, not clusters).
    cluster_order = np.lexsort((rng.random(k), -(size / (1.0 + covered))))
    picks = []
    for cluster in cluster_order:
        members = np.flatnonzero(pool_labels == cluster)
        if len(members):
            picks.append(sample[members[np.argmax(weight[members])]])
        if len(picks) >= request.batch_size:
            break
    return _batch_first(np.asarray(picks, dtype=np.int64), by_uncertainty)


VOCABULARY_SAMPLE = 20_000
VOCABULARY_RANDOM_SHARE = 0.25


def _row_texts(request: RankRequest, rows: np.ndarray) -> list[str]:
    texts = request.texts
    return list(texts(rows) if callable(texts) else [texts[i] for i in rows])


def _vocabulary_order(request: RankRequest) -> np.ndarray:
    """Greedy coverage of the catalog's vocabulary the labelled products have not shown the model yet.

    A product's gain is the summed pool frequency of its words (jieba-segmented for Chinese) that no
    labelled product contains; after each pick its words count as seen, so a batch spreads over new
    vocabulary instead of repeating variants of one product (submodular coverage, lazy greedy). Frequent
    unseen words first: micro-F1 weighs products, and a word in many products teaches the tagger about all
    of them. A share of the batch is uniformly random (keeps the labelled set representative: the tagger
    tunes its thresholds on it). Needs ``texts``; without them it falls back to ``dense_uncertain``.
    """
    import heapq

    if request.texts is None:
        return _dense_uncertain_order(request)
    probs = request.probs
    n = probs.shape[0]
    rng = request.rng
    uncertainty = _scores(probs, _threshold_max, request.thresholds)
    by_uncertainty = _order_by(uncertainty, rng)
    sample = np.sort(rng.choice(n, size=min(n, VOCABULARY_SAMPLE), replace=False))
    tokens = [set(_words(t)) for t in _row_texts(request, sample)]
    seen: set[str] = set()
    for text in request.labeled_texts or []:
        seen.update(_words(text))
    frequency: dict[str, int] = {}
    for words in tokens:
        for w in words:
            frequency[w] = frequency.get(w, 0) + 1

    def gain(i: int) -> float:
        return float(sum(frequency[w] for w in tokens[i] if w not in seen))

    n_random = int(round(VOCABULARY_RANDOM_SHARE * request.batch_size))
    n_greedy = min(request.batch_size - n_random, len(sample))
    # Lazy greedy: gains only shrink as words become seen, so a stale heap entry is an upper bound.
    heap = [(-gain(i), float(-uncertainty[sample[i]]), i) for i in range(len(sample))]
    heapq.heapify(heap)
    picked: list[int] = []
    while heap and len(picked) < n_greedy:
        negative_gain, tie, i = heapq.heappop(heap)
        current = gain(i)
        if current < -negative_gain - 1e-9:
            heapq.heappush(heap, (-current, tie, i))
            continue
        picked.append(int(sample[i]))
        seen.update(tokens[i])
    taken = np.zeros(n, dtype=bool)
    greedy = np.asarray(picked, dtype=np.int64)
    taken[greedy] = True
    random_picks = rng.permutation(np.flatnonzero(~taken))[:n_random]
    return _batch_first(_interleave(greedy, random_picks), by_uncertainty)


GRADIENT_CANDIDATES = 5_000


def _decision_residual(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``p - y`` with the model's own decisions ``y = p >= threshold`` as labels (the BCE logit gradient)."""
    return block - (block >= thresholds)


def _residual_sq_norm(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    residual = _decision_residual(block, thresholds)
    return np.einsum("ij,ij->i", residual, residual)


def _gradient_embedding_order(request: RankRequest) -> np.ndarray:
    """BADGE (Ash et al., 2020): k-means++ seeding over the loss gradients the batch would cause.

    For a product with representation ``h`` (unit vector: TF-IDF of its text, or the caller's features)
    and tag probabilities ``p``, the gradient of the tagging loss w.r.t. a linear output layer, taking the
    model's own decisions ``y = p >= threshold`` as labels, is ``(p - y) ⊗ h``. Its length is the product's
    uncertainty, its direction says what it would teach: k-means++ D² sampling over these vectors picks
    products that are uncertain *and* unlike each other, without a knob between the two. The gradients are
    never formed: ``<g_i, g_j> = <r_i, r_j> <h_i, h_j>``. Large pools are prefiltered to the
    ``GRADIENT_CANDIDATES`` longest gradients.
    """
    probs = request.probs
    n = probs.shape[0]
    rng = request.rng
    thresholds = request.thresholds.astype(np.float32)
    sq_norm = _scores(probs, _residual_sq_norm, thresholds)
    by_norm = _order_by(sq_norm, rng)
    candidates = by_norm[: min(n, GRADIENT_CANDIDATES)]
    residual = _decision_residual(np.asarray(probs[candidates], dtype=np.float32), thresholds)
    vectors, _, _ = _representation(request, candidates)
    g_sq = sq_norm[candidates]

    def squared_distance_to(pick: int) -> np.ndarray:
        inner = (residual @ residual[pick]) * (vectors @ vectors[pick])
        return np.maximum(g_sq + g_sq[pick] - 2.0 * inner, 0.0)

    # k-means++ seeding: the longest gradient first, then each pick with probability proportional to its
    # squared distance from the nearest one already picked (identical products have distance 0).
    picks: list[int] = [int(np.argmax(g_sq))]
    min_d2 = squared_distance_to(picks[0])
    min_d2[picks] = 0.0
    for _ in range(min(request.batch_size, len(candidates)) - 1):
        total = float(min_d2.sum())
        if total <= 0:
            break
        pick = int(rng.choice(len(candidates), p=min_d2 / total))
        picks.append(pick)
        np.minimum(min_d2, squared_distance_to(pick), out=min_d2)
        min_d2[picks] = 0.0
    return _batch_first(candidates[np.asarray(picks, dtype=np.int64)], by_norm)


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
            _per_row(_modal_multilabel("max_score", higher_is_worse=True)),
        ),
        Strategy(
            "avg_score",
            "modAL multilabel.avg_score: mean of probability x (decision - 1/2) over tags.",
            _per_row(_modal_multilabel("avg_score", higher_is_worse=True)),
        ),
        Strategy(
            "max_loss",
            "modAL multilabel.max_loss (Li et al.), working here because the adapter has classes_ and predict.",
            _per_row(_modal_multilabel("max_loss", higher_is_worse=True)),
        ),
        Strategy(
            "mean_max_loss",
            "modAL multilabel.mean_max_loss (Li et al.); O(tags^2) per product, for small tag sets.",
            _per_row(_modal_multilabel("mean_max_loss", higher_is_worse=True)),
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
            "Default: typical products of the clusters with the most products per label (TypiClust-style), "
            "uncertainty-weighted; pass texts or features.",
            _coverage_order,
            uses_features=True,
        ),
    ]
}

# Chosen on measured curves (bench/README.md): on bigbasket_grocery (lexical tagger, one seed) coverage led
# random by 0.02-0.03 micro-F1 from 400 labels on, while dense_uncertain tied random and uncertainty-only
# strategies (min_confidence, uncertainty_batch) trailed it; on zh reviews uncertainty trailed badly.
DEFAULT_STRATEGY = "coverage"


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
) -> np.ndarray:
    """Priority per product (row of ``probs``): higher = review first; unique values in ``(0, 1]``.

    ``probs``: (products, tags) probabilities of the active model, columns in the tagger's ``classes_``
    order; a numpy array, a memory map or anything with ``shape`` and row slicing (it is read in blocks).
    ``thresholds``: the tagger's per-tag decision thresholds (scalar or one per column; 0.5 if None).
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


# --------------------------------------------------------------------------------------------------
# Cold start: no model yet
# --------------------------------------------------------------------------------------------------

COLD_START_CLUSTERS = 256


def text_features(texts: Sequence[str], *, dims: int = 64, seed: int = 0) -> np.ndarray:
    """Dense TF-IDF vectors (words, jieba-segmented for Chinese, plus character n-grams) reduced by SVD."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is {type(text).__name__}, expected str")
    words = TfidfVectorizer(tokenizer=_words, token_pattern=None, lowercase=True, min_df=1, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=50_000, sublinear_tf=True)
    matrix = make_union(words, chars).fit_transform(texts)
    n_components = min(dims, matrix.shape[1] - 1, len(texts) - 1)
    if n_components < 1:
        return _unit_rows(matrix.toarray().astype(np.float32))
    reduced = TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(matrix)
    return _unit_rows(reduced).astype(np.float32)


def _words(text: str) -> list[str]:
    """Word tokens as the lexical tagger sees them (jieba-segmented Chinese runs)."""
    from mlcore.text import lexical_tokens, normalize_text

    return lexical_tokens(normalize_text(text).casefold())


def cold_start_rank(
    texts: Sequence[str] | None = None,
    *,
    features: np.ndarray | None = None,
    n_clusters: int = COLD_START_CLUSTERS,
    seed: int = 0,
) -> np.ndarray:
    """Priority per product before any model exists: k-means coverage of the catalog, not id order.

    Products are clustered (``features`` if given, e.g. embeddings; otherwise TF-IDF of ``texts``); the
    order takes the product nearest each cluster centre, largest clusters first, then the second nearest
    of each, and so on, so every prefix of the queue covers the catalog in proportion. Same priority
    convention as :func:`rank`.
    """
    from sklearn.cluster import MiniBatchKMeans

    if features is None:
        if texts is None:
            raise ValueError("cold_start_rank needs texts or features")
        vectors = text_features(texts, seed=seed)
    else:
        vectors = _unit_rows(np.asarray(features, dtype=np.float32))
    n = len(vectors)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    k = max(1, min(n_clusters, n))
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit(vectors)
    labels = kmeans.labels_
    distance = np.linalg.norm(vectors - kmeans.cluster_centers_[labels], axis=1)
    sizes = np.bincount(labels, minlength=k)
    # Within a cluster: nearest to the centre first. Across clusters: round-robin, bigger clusters first.
    within = np.lexsort((distance, labels))
    position_in_cluster = np.empty(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position_in_cluster[within] = np.arange(n) - np.repeat(starts, sizes)
    cluster_rank = np.argsort(np.argsort(-sizes, kind="stable"), kind="stable")
    order = np.lexsort((cluster_rank[labels], position_in_cluster))
    return _priority_from_order(order)
