"""The Tagger contract: scikit-learn estimator style so modAL's strategy functions apply to it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from mlcore.types import ProductRecord, TagScore

# progress(phase, done, total) — phase is a short word ("encode", "epoch", ...); total may be None.
ProgressCallback = Callable[[str, int, int | None], None]


class Tagger(ABC):
    """A multi-label product tagger.

    ``fit`` learns from records that carry gold ``tags`` and returns ``self``; after it, ``classes_``
    lists the tag names (column order of ``predict_proba``). ``suggest`` applies the tagger's tuned
    thresholds and post-processing. ``save``/``load`` round-trip to a directory with identical output.
    """

    name: str = "base"
    classes_: list[str]

    @abstractmethod
    def fit(self, records: Sequence[ProductRecord], *, progress: ProgressCallback | None = None) -> Self: ...

    @abstractmethod
    def predict_proba(self, records: Sequence[ProductRecord]) -> np.ndarray:
        """(n_records, n_classes) float32 probabilities, columns in ``classes_`` order."""

    @abstractmethod
    def suggest(self, records: Sequence[ProductRecord], *, top_k: int = 20) -> list[list[TagScore]]:
        """Per record, up to ``top_k`` tags sorted by score, ``selected`` after thresholds/post-processing."""

    @abstractmethod
    def save(self, directory: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> Self: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]:  # scikit-learn estimator contract
        return {}
