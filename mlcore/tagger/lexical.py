"""The lexical tagger: word + character n-gram TF-IDF and one-vs-rest logistic regression.

Fast and strong on short titles, and the only useful signal where the base encoder does not cover the
language. Also the lexical part of the default tagger (:mod:`mlcore.tagger.hybrid`).
"""

from __future__ import annotations

import pickle
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

try:  # scikit-learn's private liblinear entry point (1.x); without it, LogisticRegression (same solver)
    from sklearn.svm._base import _fit_liblinear
except ImportError:  # pragma: no cover - depends on the installed scikit-learn
    _fit_liblinear = None

from mlcore.data import encode_labels, split_records
from mlcore.tagger.base import ExplanationSources, ProgressCallback, ScoredTagger
from mlcore.tagger.config import LexicalConfig
from mlcore.tagger.features import LexicalFeaturizer
from mlcore.thresholds import tune_thresholds
from mlcore.types import ProductRecord, Taxonomy

__all__ = ["LexicalTagger", "OneVsRestLinear", "check_training_records", "tag_classes"]


def check_training_records(records: Sequence[ProductRecord]) -> list[ProductRecord]:
    """The records that carry tags; a clear ValueError when there is nothing a tagger can learn."""
    labelled = [r for r in records if r.tags]
    if not labelled:
        raise ValueError(f"no labelled records: none of the {len(records)} records has tags")
    tags = {t for r in labelled for t in r.tags}
    if len(tags) < 2:
        raise ValueError(
            f"only one tag overall ({next(iter(tags))!r}) in {len(labelled)} labelled records: "
            "a tagger needs at least two different tags"
        )
    return labelled


def tag_classes(records: Sequence[ProductRecord]) -> list[str]:
    return sorted({t for r in records for t in r.tags})


class OneVsRestLinear:
    """One logistic regression per tag (liblinear), weights kept as one sparse matrix.

    A tag with no positive example gets a constant low score, a tag on every example a constant high one.

    Negative subsampling: a tag learns from all its positives and at most
    ``max(min_negatives, negative_ratio * positives)`` of its negatives, drawn at random and weighted up
    by the inverse of the sampling rate (so the scores stay calibrated). Most tags are rare, so most fits
    see a few thousand products instead of the whole catalog: on 20,000 bigbasket products this made the
    fits 5.5x faster for 0.002 pooled F1 (measured, see bench/README.md).
    """

    def __init__(
        self,
        C: float = 8.0,
        prune: float = 1e-2,
        n_jobs: int | None = None,
        *,
        min_negatives: int = 4000,
        negative_ratio: float = 20.0,
        seed: int = 13,
    ) -> None:
        self.C = C
        self.prune = prune
        self.n_jobs = n_jobs
        self.min_negatives = min_negatives
        self.negative_ratio = negative_ratio
        self.seed = seed

    def _fit_one(self, x: sparse.csr_matrix, target: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
        weights = None
        positives = np.flatnonzero(target)
        negatives = np.flatnonzero(target == 0)
        keep = int(max(self.min_negatives, self.negative_ratio * len(positives)))
        if keep < len(negatives):
            sampled = np.random.default_rng(seed).choice(negatives, keep, replace=False)
            rows = np.sort(np.concatenate([positives, sampled]))
            weights = np.where(target[rows] == 1, 1.0, len(negatives) / keep)
            x, target = x[rows], target[rows]
        # Dual coordinate descent: several times faster than the primal solver when features outnumber
        # products, as with n-gram TF-IDF. tol 1e-2 gave the same F1 as 1e-3 in 27% less time.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if _fit_liblinear is not None:
                # What LogisticRegression.fit calls after checking its inputs and parameters, which cost
                # a tenth of the fits with thousands of small ones (zh_taobao, 1,338 tags on 1,333
                # products: 4.84 -> 4.29 s CPU, the same weights).
                coef, intercept, _ = _fit_liblinear(
                    x, target, self.C, True, 1.0, None, "l2", True, 0, 100, 1e-2, None, sample_weight=weights
                )
                return coef.ravel().astype(np.float32), float(intercept[0])
            clf = LogisticRegression(C=self.C, solver="liblinear", dual=True, tol=1e-2, max_iter=100)
            clf.fit(x, target, sample_weight=weights)
        return clf.coef_.ravel().astype(np.float32), float(clf.intercept_[0])

    def fit(self, x: sparse.csr_matrix, y: sparse.csr_matrix, progress: Any = None) -> Self:
        n, n_classes = y.shape
        y_csc = sparse.csc_matrix(y)
        self.intercept_ = np.zeros(n_classes, dtype=np.float32)
        positives = np.diff(y_csc.indptr)
        trainable = [j for j in range(n_classes) if 0 < positives[j] < n]
        for j in range(n_classes):
            if positives[j] == 0 or positives[j] == n:
                self.intercept_[j] = -8.0 if positives[j] == 0 else 8.0

        def target_of(j: int) -> np.ndarray:
            target = np.zeros(n, dtype=np.int8)
            target[y_csc.indices[y_csc.indptr[j] : y_csc.indptr[j + 1]]] = 1
            return target

        # One column per tag, kept as int32 feature indices + float32 weights (a dual solution has a weight
        # on every feature of every support vector, mostly negligible: pruned as they arrive, so the
        # matrix never exists densely or as COO triples). |w| <= 0.01 moves a logit by at most 0.01 per
        # unit of TF-IDF: on zh_taobao (1,679 tags) pruning there kept 4.9M of 85M weights (39 MB instead
        # of 683 MB) at the same F1.
        columns: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        n_jobs = self.n_jobs or cpu_threads()
        done = 0
        # liblinear releases the GIL, so threads share the feature matrix without copies.
        with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
            for j, (w, b) in zip(
                trainable, pool.map(lambda j: self._fit_one(x, target_of(j), self.seed + j), trainable)
            ):
                keep = np.flatnonzero(np.abs(w) > self.prune).astype(np.int32)
                columns[j] = (keep, w[keep])
                self.intercept_[j] = b
                done += 1
                if progress is not None and (done % 20 == 0 or done == len(trainable)):
                    progress(done, len(trainable))
        indptr = np.zeros(n_classes + 1, dtype=np.int64)
        for j, (keep, _) in columns.items():
            indptr[j + 1] = len(keep)
        np.cumsum(indptr, out=indptr)
        indices = np.zeros(indptr[-1], dtype=np.int32)
        data = np.zeros(indptr[-1], dtype=np.float32)
        for j in sorted(columns):
            keep, weights = columns.pop(j)
            indices[indptr[j] : indptr[j + 1]] = keep
            data[indptr[j] : indptr[j + 1]] = weights
        self.coef_ = sparse.csc_matrix((data, indices, indptr), shape=(x.shape[1], n_classes)).tocsr()
        return self

    def decision_function(self, x: sparse.csr_matrix) -> np.ndarray:
        return np.asarray((x @ self.coef_).toarray(), dtype=np.float32) + self.intercept_[None, :]

    def predict_proba(self, x: sparse.csr_matrix) -> np.ndarray:
        return _sigmoid(self.decision_function(x))


def cpu_threads(num_threads: int | None = None) -> int:
    """:func:`mlcore.device.cpu_threads`, imported on use: that module imports torch, this one need not."""
    from mlcore.device import cpu_threads as device_cpu_threads

    return device_cpu_threads(num_threads)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


class LexicalTagger(ScoredTagger):
    """TF-IDF (words + character n-grams, jieba for Chinese) + one-vs-rest logistic regression.

    Config: :class:`LexicalConfig` (``C``, ``valid_fraction``, ``seed``).
    """

    name = "lexical"
    config_class = LexicalConfig
    config: LexicalConfig

    def _fit_model(self, records: Sequence[ProductRecord], classes: list[str], progress: Any = None) -> None:
        self.featurizer_ = LexicalFeaturizer()
        x = self.featurizer_.fit_transform(list(records))
        y = encode_labels([r.tags for r in records], classes)
        self.model_ = OneVsRestLinear(C=self.config.C, n_jobs=self.runtime.num_threads).fit(
            x, y, progress=progress
        )

    def fit(
        self,
        records: Sequence[ProductRecord],
        *,
        progress: ProgressCallback | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> Self:
        """``taxonomy`` is accepted for the common contract and not used: a one-vs-rest model learns a tag
        from its examples only, so a tag with none would be a column of constant low scores."""
        started = time.perf_counter()
        labelled = check_training_records(records)
        classes = tag_classes(labelled)

        def tick(phase: str) -> Any:
            return (lambda done, total: progress(phase, done, total)) if progress is not None else None

        fit_part, valid_part = (
            split_records(labelled, self.config.valid_fraction, self.config.seed)
            if len(labelled) >= 20
            else (labelled, [])
        )
        if valid_part and fit_part:
            self._fit_model(fit_part, classes, tick("fit-lexical"))
            proba = self.model_.predict_proba(self.featurizer_.transform(valid_part))
            y = encode_labels([r.tags for r in valid_part], classes)
            self.default_threshold_, self.thresholds_, f1 = tune_thresholds(y, proba)
            self.info_ = {"internal_valid_micro_f1": f1, "internal_valid_size": len(valid_part)}
        else:
            self.thresholds_ = np.full(len(classes), 0.5, dtype=np.float32)
            self.default_threshold_ = 0.5
        self._fit_model(labelled, classes, tick("refit-lexical"))
        self.classes_ = classes
        self.info_["fit_seconds"] = time.perf_counter() - started
        return self

    def predict_proba(self, records: Sequence[ProductRecord]) -> np.ndarray:
        self._check_fitted()
        if not records:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return self.model_.predict_proba(self.featurizer_.transform(list(records)))

    def explanation_sources(self) -> ExplanationSources:
        self._check_fitted()
        return ExplanationSources(featurizer=self.featurizer_, linear=self.model_)

    def _save_state(self, directory: Path) -> None:
        with open(directory / "lexical.pkl", "wb") as fh:
            pickle.dump({"featurizer": self.featurizer_, "model": self.model_}, fh, protocol=5)

    def _load_state(self, directory: Path) -> None:
        with open(directory / "lexical.pkl", "rb") as fh:
            state = pickle.load(fh)
        self.featurizer_ = state["featurizer"]
        self.model_ = state["model"]
