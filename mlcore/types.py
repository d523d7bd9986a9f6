"""Plain data types shared by every part of mlcore (and by the Django app through them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """One product as mlcore sees it: the text fields a tagger reads and, when known, its gold tags.

    The JSONL schema of ``shared/data/*/dev.jsonl`` maps onto it one to one; ``attributes`` holds the
    merchant's free key/value attributes (CSV/JSON imports, the Django ``Product.attributes``).
    """

    id: str
    title: str
    description: str = ""
    brand: str | None = None
    category_path: tuple[str, ...] | None = None
    attributes: dict[str, Any] | None = None
    lang: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TagScore:
    """One suggested tag for one product."""

    tag: str
    score: float
    selected: bool


@dataclass(slots=True)
class TrainResult:
    """What a training run produced: where the artifact is and how it scored on its validation slice."""

    path: str
    metrics: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    n_valid: int = 0
    device: str = "cpu"
    duration_s: float = 0.0
