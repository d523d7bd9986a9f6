"""Review-queue ordering: modAL query strategies over stored per-tag probabilities.

The app never keeps a modAL learner: after every suggestion refresh it hands the stored probabilities (one
row per pending product, one column per tag) to :func:`rank`, which runs modAL's query-strategy functions
through :class:`StoredProbabilities`, a thin estimator adapter whose ``X`` is a column of row indices into
those probabilities.

:func:`rank` returns a **priority per row**: ``1 - position / n`` where ``position`` is the row's place in
the review order, so priorities are unique, lie in ``(0, 1]`` and higher means review first
(``np.argsort(-priority, kind="stable")`` or :func:`review_order` gives the order back). Store it
indexed; claiming the next product is then a keyed lookup.

Modules (the former single-module ``selection.py``, split by concern): ``adapters`` (the only one importing modAL, lazily: it pulls in torch and pandas), ``base``
(input checks, block-wise scoring, ordering, priorities), ``uncertainty`` (per-row measures),
``diversity`` (batch and coverage strategies, BADGE), ``features`` (TF-IDF text vectors),
``cold_start`` (order before any model exists) and ``registry`` (``STRATEGIES``, ``DEFAULT_STRATEGY``,
:func:`rank`). Every name is re-exported here: import from ``mlcore.selection``.
"""

from __future__ import annotations

from mlcore.selection.adapters import BinaryTagView, StoredProbabilities, modal_ranked_batch
from mlcore.selection.base import ROW_BLOCK, SCORE_THREADS, RankRequest, Strategy, review_order
from mlcore.selection.cold_start import COLD_START_CLUSTERS, cold_start_rank
from mlcore.selection.diversity import (
    COVERAGE_SAMPLE,
    DEFAULT_DENSITY_POWER,
    DEFAULT_RANDOM_SHARE,
    DENSITY_NEIGHBOURS,
    DENSITY_REFERENCE,
    DIVERSITY_DIMS,
    GRADIENT_CANDIDATES,
    MAX_COVERAGE_CLUSTERS,
    MAX_LABELED_REFERENCE,
    VOCABULARY_RANDOM_SHARE,
    VOCABULARY_SAMPLE,
)

# The private tokenizer the single-module selection.py had (tests compare word sets with it).
from mlcore.selection.features import _words as _words
from mlcore.selection.features import text_features
from mlcore.selection.registry import DEFAULT_STRATEGY, STRATEGIES, rank
from mlcore.selection.uncertainty import row_uncertainty, threshold_uncertainty

__all__ = [
    "COLD_START_CLUSTERS",
    "COVERAGE_SAMPLE",
    "DEFAULT_DENSITY_POWER",
    "DEFAULT_RANDOM_SHARE",
    "DEFAULT_STRATEGY",
    "DENSITY_NEIGHBOURS",
    "DENSITY_REFERENCE",
    "DIVERSITY_DIMS",
    "GRADIENT_CANDIDATES",
    "MAX_COVERAGE_CLUSTERS",
    "MAX_LABELED_REFERENCE",
    "ROW_BLOCK",
    "SCORE_THREADS",
    "STRATEGIES",
    "VOCABULARY_RANDOM_SHARE",
    "VOCABULARY_SAMPLE",
    "BinaryTagView",
    "RankRequest",
    "StoredProbabilities",
    "Strategy",
    "cold_start_rank",
    "modal_ranked_batch",
    "rank",
    "review_order",
    "row_uncertainty",
    "text_features",
    "threshold_uncertainty",
]
