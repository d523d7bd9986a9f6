"""Cold start: a review order before any model exists (k-means coverage of the catalog)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlcore.selection.base import _priority_from_order, _unit_rows
from mlcore.selection.features import text_features

COLD_START_CLUSTERS = 256


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
