"""Loading artifacts (cached per process) and predicting."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlcore.postprocess import PostProcessConfig
from mlcore.settings import RuntimeSettings
from mlcore.tagger import load_tagger
from mlcore.tagger.base import Tagger
from mlcore.types import ProductRecord, TagScore

__all__ = ["load_model", "predict", "predict_proba"]

# Models kept loaded per process: the active version and the one being promoted or compared with it.
MODEL_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, float, RuntimeSettings], Tagger] = OrderedDict()
_lock = threading.Lock()


def load_model(directory: str | Path, *, runtime: RuntimeSettings | None = None) -> Tagger:
    """The tagger saved in ``directory``, run with ``runtime`` (cache dir, base model, device, threads);
    loaded once per process and kept in a small LRU cache keyed by path, modification time and runtime
    settings (a re-published artifact at the same path is reloaded)."""
    runtime = runtime or RuntimeSettings()
    path = Path(directory).resolve()
    meta = path / "tagger.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{directory} is not a tagger artifact (no tagger.json)")
    key = (str(path), meta.stat().st_mtime, runtime)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = load_tagger(path, runtime=runtime)
    with _lock:
        _cache[key] = model
        _cache.move_to_end(key)
        while len(_cache) > MODEL_CACHE_SIZE:
            _cache.popitem(last=False)
    return model


def predict(
    model: Tagger,
    records: Sequence[ProductRecord],
    top_k: int = 20,
    *,
    postprocess: PostProcessConfig | None = None,
) -> list[list[TagScore]]:
    """Per record, up to ``top_k`` :class:`TagScore` sorted by score; ``selected`` after thresholds and
    post-processing. ``postprocess`` (aliases, parents, blocked tags, caps) replaces the model's own for
    this call only."""
    records = list(records)
    if not records:
        return []
    if postprocess is None:
        return model.suggest(records, top_k=top_k)
    saved = getattr(model, "postprocess", None)
    if saved is None:
        raise TypeError(f"{type(model).__name__} does not support post-processing settings")
    proba = model.predict_proba(records)
    # Apply the caller's settings without changing the cached model other callers share.
    clone = object.__new__(type(model))
    clone.__dict__.update(model.__dict__)
    clone.postprocess = postprocess
    return clone.suggest_from_proba(proba, top_k=top_k)  # type: ignore[attr-defined]


def predict_proba(model: Tagger, records: Sequence[ProductRecord], *, batch_size: int = 4096) -> np.ndarray:
    """(n, len(model.classes_)) probabilities, computed in batches to bound memory."""
    records = list(records)
    if not records:
        return np.zeros((0, len(model.classes_)), dtype=np.float32)
    parts = [model.predict_proba(records[i : i + batch_size]) for i in range(0, len(records), batch_size)]
    return np.vstack(parts)
