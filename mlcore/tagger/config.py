"""Typed tagger configs: frozen dataclasses validated on construction (transformers style).

A config holds what the tagger is asked to learn with; values the tagger decides while fitting (e.g.
whether to fine-tune when ``fine_tune`` is None) are fitted attributes ending in ``_`` on the tagger,
never written back here. Where and how to run (cache dir, device, threads) is not config either: see
:class:`mlcore.settings.RuntimeSettings`. This module imports neither torch nor scikit-learn, so a
config can be checked before any model code loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Self

__all__ = ["HybridConfig", "KeywordConfig", "LexicalConfig", "TaggerConfig"]


@dataclass(frozen=True)
class TaggerConfig:
    """Base of the tagger configs: dict round trip with unknown keys rejected by name."""

    # Keys that artifacts of earlier versions stored in their config but that are runtime settings now:
    # dropped when such an artifact loads, a named error in a config given by hand.
    RUNTIME_KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None) -> Self:
        """The config from ``data``; a ValueError naming any key the config does not know."""
        data = dict(data or {})
        known = [f.name for f in fields(cls)]
        runtime = sorted(set(data) & set(cls.RUNTIME_KEYS))
        if runtime:
            raise ValueError(
                f"{', '.join(runtime)}: not a {cls.__name__} key but a runtime setting; pass "
                "mlcore.settings.RuntimeSettings (the command line's --cache-dir / TAGSTUDIO_* variables)"
            )
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown config key{'s' if len(unknown) > 1 else ''} for {cls.__name__}: "
                f"{', '.join(repr(k) for k in unknown)} (known: {', '.join(known)})"
            )
        return cls(**data)

    @classmethod
    def from_saved(cls, data: Mapping[str, Any] | None) -> Self:
        """The config stored in an artifact, of this version or an earlier one (runtime keys dropped)."""
        kept = {k: v for k, v in dict(data or {}).items() if k not in cls.RUNTIME_KEYS}
        return cls.from_dict(kept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _check(self, name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ValueError(f"{type(self).__name__}.{name} must be {expected}, got {getattr(self, name)!r}")

    def _coerce_float(self, name: str) -> None:
        value = getattr(self, name)
        self._check(name, isinstance(value, int | float) and not isinstance(value, bool), "a number")
        object.__setattr__(self, name, float(value))

    def _check_int(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        self._check(
            name,
            isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            f"an int >= {minimum}",
        )


@dataclass(frozen=True)
class KeywordConfig(TaggerConfig):
    """``threshold``: the score at which a mentioned tag is selected."""

    threshold: float = 0.5

    def __post_init__(self) -> None:
        self._coerce_float("threshold")
        self._check("threshold", 0.0 < self.threshold < 1.0, "in (0, 1)")


@dataclass(frozen=True)
class LexicalConfig(TaggerConfig):
    """``C``: inverse regularisation; ``valid_fraction``: slice held out to tune the thresholds before the
    final refit on all records; ``seed``."""

    C: float = 8.0
    valid_fraction: float = 0.15
    seed: int = 13

    def __post_init__(self) -> None:
        self._coerce_float("C")
        self._check("C", self.C > 0, "> 0")
        self._coerce_float("valid_fraction")
        self._check("valid_fraction", 0.0 < self.valid_fraction < 1.0, "in (0, 1)")
        self._check_int("seed", 0)


@dataclass(frozen=True)
class HybridConfig(TaggerConfig):
    """The default tagger's config.

    ``base_model`` (checkpoint dir or hub name; None: the caller's ``RuntimeSettings.base_model``, else the
    packaged MiniLM), ``max_length`` (encoder tokens), ``fine_tune`` (fine-tune the encoder; None: only
    when CUDA is present, decided at fit time), ``fine_tune_epochs``, ``C`` (lexical regularisation),
    ``hidden`` (head units), ``epochs`` (head max), ``knn_k``, ``candidates`` (tags scored by the blend per
    product), ``valid_fraction``, ``max_valid`` (cap on that slice), ``refit_max`` (up to this many
    labelled products the lexical model and the head are retrained on all of them after the blend is
    fitted), ``seed``.

    Few labels (issue 19): up to ``cross_fit_max`` labelled products the parts are cross-fitted over
    ``cross_fit_folds`` folds, so the blend and the thresholds learn from every product's out-of-fold
    scores instead of a slice of a fifth of them (20 products at 100 labels); above it, the single slice.
    ``tag_names``: score each tag by the similarity of its name (and aliases) to the product in the
    encoder's space, a signal a tag has before its first example; ``hierarchy``: blend features from the
    tag's parent, children and siblings (the taxonomy's parents, else learned from tag co-occurrence).
    ``exclusive_groups``: learn groups of tags that exclude each other (one colour, one gender) and, per
    group, whether the selection keeps at most one or exactly one of them (``mlcore.tagger.exclusive``).
    """

    RUNTIME_KEYS: ClassVar[tuple[str, ...]] = ("cache_dir", "device")

    base_model: str | None = None
    max_length: int = 128
    fine_tune: bool | None = None
    fine_tune_epochs: int = 4
    C: float = 8.0
    hidden: int = 512
    epochs: int = 60
    knn_k: int = 10
    candidates: int = 40
    valid_fraction: float = 0.2
    max_valid: int = 3000
    refit_max: int = 12000
    cross_fit_folds: int = 3
    cross_fit_max: int = 3000
    tag_names: bool = True
    hierarchy: bool = True
    exclusive_groups: bool = True
    seed: int = 13

    def __post_init__(self) -> None:
        self._check(
            "base_model", self.base_model is None or isinstance(self.base_model, str), "a string or None"
        )
        if self.base_model == "":
            object.__setattr__(self, "base_model", None)
        self._check(
            "fine_tune", self.fine_tune is None or isinstance(self.fine_tune, bool), "true, false or None"
        )
        for name in (
            "max_length",
            "fine_tune_epochs",
            "hidden",
            "epochs",
            "knn_k",
            "candidates",
            "max_valid",
        ):
            self._check_int(name, 1)
        self._check_int("refit_max", 0)
        self._check_int("cross_fit_folds", 2)
        self._check_int("cross_fit_max", 0)
        for name in ("tag_names", "hierarchy", "exclusive_groups"):
            self._check(name, isinstance(getattr(self, name), bool), "true or false")
        self._check_int("seed", 0)
        self._coerce_float("C")
        self._check("C", self.C > 0, "> 0")
        self._coerce_float("valid_fraction")
        self._check("valid_fraction", 0.0 < self.valid_fraction < 1.0, "in (0, 1)")
