"""Tagger registry: names map to implementations imported lazily (torch loads only when needed)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from mlcore.tagger.base import TAGGER_FILE, Tagger

__all__ = ["Tagger", "available_taggers", "get_tagger", "load_tagger", "tagger_class"]

# name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "default": "mlcore.tagger.hybrid:HybridTagger",
    "lexical": "mlcore.tagger.lexical:LexicalTagger",
    "keyword": "mlcore.tagger.keyword:KeywordTagger",
    "dummy": "mlcore.tagger.keyword:KeywordTagger",  # alias: the deterministic tagger for tests
}


def available_taggers() -> list[str]:
    return sorted(_REGISTRY)


def tagger_class(name: str) -> type[Tagger]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown tagger {name!r}; available: {', '.join(available_taggers())}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_tagger(name: str = "default", **config: Any) -> Tagger:
    """A new, unfitted tagger of the given kind with ``config`` (see each class for its keys)."""
    return tagger_class(name)(**config)


def load_tagger(directory: str | Path) -> Tagger:
    """Load a saved tagger; ``tagger.json`` in the directory names its kind."""
    directory = Path(directory)
    meta_path = directory / TAGGER_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a tagger artifact (no {TAGGER_FILE})")
    with open(meta_path, encoding="utf-8") as fh:
        name = json.load(fh).get("tagger")
    return tagger_class(name).load(directory)
