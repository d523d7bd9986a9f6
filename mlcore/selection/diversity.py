"""Diversity strategies: representations, density, modAL batch modes, k-means coverage, vocabulary
coverage and BADGE gradient embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcore.selection.adapters import (
    _modal_multilabel_uncertainty,
    modal_ranked_batch,
    modal_uncertainty_batch,
)
from mlcore.selection.base import (
    RankRequest,
    _batch_first,
    _interleave,
    _order_by,
    _scores,
    _selected_rows,
    _unit_rows,
)
from mlcore.selection.features import _words, text_features
from mlcore.selection.uncertainty import _threshold_max, expected_wrong_decisions

# Ranked batch's cost is (candidates x (labelled reference + picks) x dims) per pick (upstream #38/#133):
# reduce the space and bound both sets so a pass stays around a second on two cores.
DIVERSITY_DIMS = 32
MAX_LABELED_REFERENCE = 500
DENSITY_REFERENCE = 2_000
DENSITY_NEIGHBOURS = 10


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


def _candidate_count(n_rows: int, batch_size: int) -> int:
    return min(n_rows, max(10 * batch_size, 1_000))


def _uncertainty_batch_order(request: RankRequest) -> np.ndarray:
    """modAL's ``uncertainty_batch_sampling`` verbatim (1 - max probability) on the top candidates."""
    probs = request.probs
    n = probs.shape[0]
    uncertainty = _scores(probs, _modal_multilabel_uncertainty, request.thresholds)
    by_uncertainty = _order_by(uncertainty, request.rng)
    candidates = by_uncertainty[: _candidate_count(n, request.batch_size)]
    vectors, reference, _ = _representation(request, candidates)
    picked = modal_uncertainty_batch(
        vectors,
        np.asarray(probs[candidates], dtype=np.float32),
        reference,
        n_instances=min(request.batch_size, len(candidates)),
    )
    return _batch_first(candidates[picked], by_uncertainty)


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


def _expected_errors_batch_order(request: RankRequest) -> np.ndarray:
    """Expected wrong decisions as the utility of modAL's ranked batch over the top candidates, so one
    batch does not spend its reviews on near-copies of one listing the model gets wrong."""
    probs = request.probs
    expected = _scores(probs, expected_wrong_decisions, request.thresholds, request.selected)
    by_expected = _order_by(expected, request.rng)
    candidates = by_expected[: _candidate_count(probs.shape[0], request.batch_size)]
    vectors, reference, _ = _representation(request, candidates)
    reference = _cap_reference(reference, request.rng)
    # ranked_batch scales nothing: bring the utility to [0, 1] like the uncertainties it was written for.
    utility = expected[candidates] / max(float(expected[candidates].max()), 1e-12)
    picked = modal_ranked_batch(vectors, utility, request.batch_size, labeled_reference=reference)
    return _batch_first(candidates[picked], by_expected)


EXPECTED_ERRORS_RANDOM_SHARE = 0.25


def _expected_errors_mixed_order(request: RankRequest) -> np.ndarray:
    """Expected wrong decisions with a quarter of each batch uniformly random: the random share keeps the
    reviewed set (on which the tagger tunes its thresholds and blend) a picture of the whole catalog."""
    probs = request.probs
    n = probs.shape[0]
    rng = request.rng
    by_expected = _order_by(
        _scores(probs, expected_wrong_decisions, request.thresholds, request.selected), rng
    )
    n_random = min(int(round(EXPECTED_ERRORS_RANDOM_SHARE * request.batch_size)), n)
    n_top = min(max(request.batch_size - n_random, 0), n - n_random)
    top = by_expected[:n_top]
    taken = np.zeros(n, dtype=bool)
    taken[top] = True
    random_picks = rng.permutation(np.flatnonzero(~taken))[:n_random]
    return _batch_first(_interleave(top, random_picks), by_expected)


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


def _decision_residual(
    block: np.ndarray, thresholds: np.ndarray, selected: np.ndarray | None = None
) -> np.ndarray:
    """``p - y`` with the model's own decisions ``y`` as labels (the BCE logit gradient): its ``selected``
    tags when given (post-processing included), else ``p >= threshold``."""
    labels = block >= thresholds if selected is None else np.asarray(selected, dtype=bool)
    return block - labels


def _residual_sq_norm(
    block: np.ndarray, thresholds: np.ndarray, selected: np.ndarray | None = None
) -> np.ndarray:
    residual = _decision_residual(block, thresholds, selected)
    return np.einsum("ij,ij->i", residual, residual)


def _gradient_embedding_order(request: RankRequest) -> np.ndarray:
    """BADGE (Ash et al., 2020): k-means++ seeding over the loss gradients the batch would cause.

    For a product with representation ``h`` (unit vector: TF-IDF of its text, or the caller's features)
    and tag probabilities ``p``, the gradient of the tagging loss w.r.t. a linear output layer, taking the
    model's own decisions ``y`` as labels (its stored ``selected`` tags, else ``p >= threshold``), is
    ``(p - y) ⊗ h``. Its length is the product's uncertainty, its direction says what it would teach:
    k-means++ D² sampling over these vectors picks products that are uncertain *and* unlike each other,
    without a knob between the two. The gradients are never formed: ``<g_i, g_j> = <r_i, r_j> <h_i, h_j>``.
    Large pools are prefiltered to the ``GRADIENT_CANDIDATES`` longest gradients.
    """
    probs = request.probs
    n = probs.shape[0]
    rng = request.rng
    thresholds = request.thresholds.astype(np.float32)
    sq_norm = _scores(probs, _residual_sq_norm, thresholds, request.selected)
    by_norm = _order_by(sq_norm, rng)
    candidates = by_norm[: min(n, GRADIENT_CANDIDATES)]
    residual = _decision_residual(
        np.asarray(probs[candidates], dtype=np.float32),
        thresholds,
        None if request.selected is None else _selected_rows(request.selected, candidates),
    )
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
