"""Tagger registry: names map to implementations imported lazily (torch loads only when needed)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlcore.settings import RuntimeSettings
from mlcore.tagger.base import TAGGER_FILE, Tagger
from mlcore.tagger.config import HybridConfig, KeywordConfig, LexicalConfig, TaggerConfig

__all__ = [
    "Tagger",
    "TaggerConfig",
    "available_taggers",
    "get_tagger",
    "load_tagger",
    "tagger_class",
    "tagger_config_class",
]

# name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "default": "mlcore.tagger.hybrid:HybridTagger",
    "lexical": "mlcore.tagger.lexical:LexicalTagger",
    "keyword": "mlcore.tagger.keyword:KeywordTagger",
    "dummy": "mlcore.tagger.keyword:KeywordTagger",  # alias: the deterministic tagger for tests
}
# name -> its config class (light: checked without importing torch or the tagger module)
_CONFIGS: dict[str, type[TaggerConfig]] = {
    "default": HybridConfig,
    "lexical": LexicalConfig,
    "keyword": KeywordConfig,
    "dummy": KeywordConfig,
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


def tagger_config_class(name: str) -> type[TaggerConfig]:
    """The config dataclass of tagger ``name`` (imports no model code)."""
    if name not in _CONFIGS:
        raise ValueError(f"unknown tagger {name!r}; available: {', '.join(available_taggers())}")
    return _CONFIGS[name]


def get_tagger(
    name: str = "default",
    config: TaggerConfig | Mapping[str, Any] | None = None,
    *,
    runtime: RuntimeSettings | None = None,
    **overrides: Any,
) -> Tagger:
    """A new, unfitted tagger of the given kind.

    ``config``: its config dataclass (see :mod:`mlcore.tagger.config`) or a mapping of its keys;
    ``overrides``: keys on top of that (``get_tagger("default", hidden=64)``). An unknown key is a
    ValueError naming it. ``runtime``: cache dir, base model, device and threads to run with.
    """
    config_class = tagger_config_class(name)
    if isinstance(config, TaggerConfig):
        if not isinstance(config, config_class):
            raise TypeError(f"tagger {name!r} takes a {config_class.__name__}, not {type(config).__name__}")
        config = config.to_dict()
    typed = config_class.from_dict({**(config or {}), **overrides})
    return tagger_class(name)(typed, runtime=runtime)


def load_tagger(directory: str | Path, *, runtime: RuntimeSettings | None = None) -> Tagger:
    """Load a saved tagger; ``tagger.json`` in the directory names its kind. ``runtime`` as for
    :func:`get_tagger` (the model itself is what was saved)."""
    directory = Path(directory)
    meta_path = directory / TAGGER_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a tagger artifact (no {TAGGER_FILE})")
    with open(meta_path, encoding="utf-8") as fh:
        name = json.load(fh).get("tagger")
    return tagger_class(name).load(directory, runtime=runtime)
