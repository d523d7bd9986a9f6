"""The Tagger contract: scikit-learn estimator style so modAL's strategy functions apply to it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from mlcore.settings import RuntimeSettings
from mlcore.tagger.config import TaggerConfig
from mlcore.types import ProductRecord, TagScore, Taxonomy

# progress(phase, done, total) — phase is a short word ("encode", "epoch", ...); total may be None.
ProgressCallback = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class NeighbourIndex:
    """The training products a tagger votes with (:mod:`mlcore.explain` reads it, nothing is copied).

    ``embeddings``: (n_train, dim) unit vectors; ``labels``: (n_train, n_classes) 0/1 sparse matrix in
    ``classes_`` order; ``ids``/``titles``: per row, ``None`` for artifacts saved before they were kept;
    ``k``: how many nearest rows the tagger's vote counts; ``embed``: records -> their (n, dim) vectors,
    the same way the index rows were made.
    """

    embeddings: np.ndarray
    labels: Any
    ids: Sequence[str] | None
    titles: Sequence[str] | None
    k: int
    embed: Callable[[Sequence[ProductRecord]], np.ndarray]


@dataclass(frozen=True)
class ExplanationSources:
    """What a fitted tagger scores with, for :mod:`mlcore.explain`: each part it has, ``None`` or False
    when it has none. ``featurizer`` (a :class:`~mlcore.tagger.features.LexicalFeaturizer`) and
    ``linear`` (a :class:`~mlcore.tagger.lexical.OneVsRestLinear`) come together."""

    mentions: bool = True
    featurizer: Any = None
    linear: Any = None
    neighbours: NeighbourIndex | None = None


class Tagger(ABC):
    """A multi-label product tagger.

    ``fit`` learns from records that carry gold ``tags`` and returns ``self``; after it, ``classes_``
    lists the tag names (column order of ``predict_proba``). ``suggest`` applies the tagger's tuned
    thresholds and post-processing. ``save``/``load`` round-trip to a directory with identical output.
    """

    name: str = "base"
    classes_: list[str]

    @abstractmethod
    def fit(
        self,
        records: Sequence[ProductRecord],
        *,
        progress: ProgressCallback | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> Self:
        """Learn from ``records``; ``taxonomy``: the tags known before any example (their names, parents
        and aliases), for taggers that can score a tag from its words (see each tagger)."""

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
    def load(cls, directory: str | Path, *, runtime: RuntimeSettings | None = None) -> Self: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]:  # scikit-learn estimator contract
        return {}


TAGGER_FILE = "tagger.json"
# tagger.json format: 1 stored the config as rewritten by fit (the default tagger's resolved "fine_tune"
# and its runtime keys "cache_dir"/"device"); 2 stores the config as given plus the "fitted" decisions.
TAGGER_FORMAT = 2


class ScoredTagger(Tagger):
    """Shared machinery: thresholds, post-processing, ``suggest`` and the artifact's ``tagger.json``.

    Subclasses set ``config_class`` (their :class:`TaggerConfig`), implement ``fit`` (setting ``classes_``,
    ``thresholds_``), ``predict_proba`` and the ``_save_state``/``_load_state`` hooks for their weights;
    decisions taken while fitting go to ``_fitted_params``/``_restore_fitted``, never into ``config``.
    ``runtime``: where and how to run (cache dir, base model, device, threads); not saved with the model.
    """

    config_class: ClassVar[type[TaggerConfig]] = TaggerConfig

    def __init__(
        self,
        config: TaggerConfig | Mapping[str, Any] | None = None,
        *,
        runtime: RuntimeSettings | None = None,
    ) -> None:
        from mlcore.postprocess import PostProcessConfig

        if config is None or isinstance(config, Mapping):
            config = self.config_class.from_dict(config)
        elif not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, not {type(config).__name__}"
            )
        self.config = config
        self.runtime = runtime or RuntimeSettings()
        self.postprocess = PostProcessConfig()
        self.classes_ = []
        self.thresholds_: np.ndarray = np.zeros(0, dtype=np.float32)
        self.default_threshold_: float = 0.5
        self.info_: dict[str, Any] = {}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return self.config.to_dict()

    def set_params(self, **params: Any) -> Self:
        self.config = self.config_class.from_dict({**self.config.to_dict(), **params})
        return self

    def _fitted_params(self) -> dict[str, Any]:
        """Decisions taken by ``fit`` beyond the weights (saved as tagger.json's "fitted")."""
        return {}

    def _restore_fitted(self, fitted: Mapping[str, Any] | None, saved_config: Mapping[str, Any]) -> None:
        """Set what :meth:`_fitted_params` saved; ``fitted`` is None for a format-1 artifact, whose
        ``saved_config`` holds those decisions instead."""
        return None

    def explanation_sources(self) -> ExplanationSources:
        """The parts :mod:`mlcore.explain` may cite (default: the tag's words in the product's text)."""
        self._check_fitted()
        return ExplanationSources()

    def out_of_fold_suggestions(self, *, top_k: int = 20) -> list[tuple[str, list[TagScore]]]:
        """Per product the tagger was fitted on, (its id, its suggestions as ``suggest`` would give them)
        from models that never saw that product, when ``fit`` fitted such models anyway (cross-fitting);
        empty otherwise (the default). Only kept in memory after ``fit``: a loaded tagger has none.

        Held-out evidence for precision-gated auto-approval (``mlcore.autoapprove``) beyond the
        validation slice: a tagger may return scores here only when every step from its inputs to the
        score (parts, blend, calibration, post-processing) ran out of fold for that product."""
        return []

    def _check_fitted(self) -> None:
        if not self.classes_:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    def thresholds_map(self) -> dict[str, float]:
        return {t: float(v) for t, v in zip(self.classes_, self.thresholds_)}

    def suggest(self, records: Sequence[ProductRecord], *, top_k: int = 20) -> list[list[TagScore]]:
        return self.suggest_from_proba(self.predict_proba(records), top_k=top_k)

    def suggest_from_proba(self, proba: np.ndarray, *, top_k: int = 20) -> list[list[TagScore]]:
        """Post-processed suggestions from a probability matrix in ``classes_`` order."""
        from mlcore.postprocess import postprocess_scores

        self._check_fitted()
        n_classes = len(self.classes_)
        # Only the best-scored tags and those over their threshold can appear: skip the rest early.
        keep = min(n_classes, max(top_k, 1) + 10)
        over = proba >= self.thresholds_[None, :]
        thresholds = self.thresholds_map()
        out: list[list[TagScore]] = []
        for i in range(proba.shape[0]):
            row = proba[i]
            if keep < n_classes:
                idx = np.argpartition(-row, keep - 1)[:keep]
                idx = np.union1d(idx, np.flatnonzero(over[i]))
            else:
                idx = np.arange(n_classes)
            scores = {self.classes_[j]: float(row[j]) for j in idx}
            out.append(
                postprocess_scores(
                    scores,
                    thresholds=thresholds,
                    default_threshold=self.default_threshold_,
                    config=self.postprocess,
                    top_k=top_k,
                )
            )
        return out

    def save(self, directory: str | Path) -> None:
        import json

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "tagger": self.name,
            "format": TAGGER_FORMAT,
            "config": self.config.to_dict(),
            "fitted": self._fitted_params(),
            "classes": list(self.classes_),
            "thresholds": [float(t) for t in self.thresholds_],
            "default_threshold": float(self.default_threshold_),
            "postprocess": self.postprocess.to_dict(),
            "info": self.info_,
        }
        self._save_state(directory)
        with open(directory / TAGGER_FILE, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, ensure_ascii=False, indent=1, default=_json_default)

    @classmethod
    def load(cls, directory: str | Path, *, runtime: RuntimeSettings | None = None) -> Self:
        import json

        from mlcore.postprocess import PostProcessConfig

        directory = Path(directory)
        with open(directory / TAGGER_FILE, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("tagger") != cls.name:
            raise ValueError(f"{directory} holds a {meta.get('tagger')!r} tagger, not {cls.name!r}")
        saved_config = meta.get("config") or {}
        obj = cls(cls.config_class.from_saved(saved_config), runtime=runtime)
        obj.classes_ = list(meta["classes"])
        obj.thresholds_ = np.asarray(meta["thresholds"], dtype=np.float32)
        obj.default_threshold_ = float(meta["default_threshold"])
        obj.postprocess = PostProcessConfig.from_dict(meta.get("postprocess") or {})
        obj.info_ = meta.get("info") or {}
        obj._restore_fitted(meta.get("fitted"), saved_config)
        obj._load_state(directory)
        return obj

    def _save_state(self, directory: Path) -> None:  # weights; default: nothing beyond tagger.json
        return None

    def _load_state(self, directory: Path) -> None:
        return None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
