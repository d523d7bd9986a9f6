"""A deterministic keyword tagger: a tag is suggested when its words occur in the product name.

Scores are the share of training products mentioning the tag that carried it (smoothed), so the
tagger still learns which mentions matter. No randomness, no torch: made for the Django tests and
CPU-only CI, and a useful floor for catalogs whose tags are literally in the titles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from mlcore.data import encode_labels
from mlcore.tagger.base import ProgressCallback, ScoredTagger
from mlcore.tagger.config import KeywordConfig
from mlcore.tagger.lexical import check_training_records, tag_classes
from mlcore.tagger.mentions import MentionIndex
from mlcore.types import ProductRecord, Taxonomy

__all__ = ["KeywordTagger"]


class KeywordTagger(ScoredTagger):
    """Config: :class:`KeywordConfig` (``threshold``, default 0.5)."""

    name = "keyword"
    config_class = KeywordConfig
    config: KeywordConfig

    def fit(
        self,
        records: Sequence[ProductRecord],
        *,
        progress: ProgressCallback | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> Self:
        """``taxonomy``: its tags become classes too and its aliases count as mentions, so a tag with no
        example is still selected where the product names it (at precision 0.5, the smoothed prior)."""
        labelled = check_training_records(records)
        known = set(taxonomy.tags) if taxonomy is not None else set()
        self.classes_ = sorted(set(tag_classes(labelled)) | known)
        self.aliases_ = {t: list(a) for t, a in taxonomy.aliases.items()} if taxonomy is not None else {}
        index = MentionIndex(self.classes_, self.aliases_)
        m = index.matrix(labelled)
        y = encode_labels([r.tags for r in labelled], self.classes_)
        hits = np.asarray(m.sum(axis=0)).ravel()
        both = np.asarray(m.multiply(y).sum(axis=0)).ravel()
        self.precision_ = ((both + 1.0) / (hits + 2.0)).astype(np.float32)
        self.prior_ = (np.asarray(y.sum(axis=0)).ravel() / len(labelled)).astype(np.float32)
        self.thresholds_ = np.full(len(self.classes_), self.config.threshold, dtype=np.float32)
        self.default_threshold_ = self.config.threshold
        self._index = index
        if progress is not None:
            progress("fit", 1, 1)
        return self

    def predict_proba(self, records: Sequence[ProductRecord]) -> np.ndarray:
        self._check_fitted()
        if not hasattr(self, "_index"):
            self._index = MentionIndex(self.classes_, getattr(self, "aliases_", {}))
        m = self._index.matrix(list(records)).toarray()
        # Unmentioned tags keep a small prior-based score so the ranking still has an order.
        return np.where(m > 0, self.precision_[None, :], 0.1 * self.prior_[None, :]).astype(np.float32)

    def _save_state(self, directory: Any) -> None:
        np.savez(directory / "keyword.npz", precision=self.precision_, prior=self.prior_)
        (directory / "keyword-aliases.json").write_text(json.dumps(self.aliases_, ensure_ascii=False))

    def _load_state(self, directory: Any) -> None:
        state = np.load(directory / "keyword.npz")
        self.precision_ = state["precision"]
        self.prior_ = state["prior"]
        aliases = directory / "keyword-aliases.json"  # absent in artifacts saved before aliases counted
        self.aliases_ = json.loads(aliases.read_text()) if aliases.is_file() else {}
