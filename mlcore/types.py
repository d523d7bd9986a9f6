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


@dataclass(frozen=True)
class Taxonomy:
    """The tags a tagger may suggest, known before any product carries them (an imported taxonomy).

    - ``tags``: every tag name; a tag with no labelled product yet is still a class of the model, scored
      from its own words (mentions in the product text, similarity of its name in the encoder's space).
    - ``parents``: tag -> parent tag (absent or None: a root); a child implies its parents.
    - ``aliases``: tag -> other names of it (synonyms), matched like the tag's own name.

    Built by the app from its Tag/TagAlias rows, by a bench from a set's tag names; plain data, checked on
    construction so a bad map fails with the tag it is about.
    """

    tags: tuple[str, ...]
    parents: dict[str, str | None] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tags = tuple(self.tags)
        object.__setattr__(self, "tags", tags)
        known = set(tags)
        for tag in tags:
            if not isinstance(tag, str) or not tag.strip():
                raise ValueError(f"taxonomy: tag names must be non-empty strings, got {tag!r}")
        if len(known) != len(tags):
            dup = next(t for t in tags if tags.count(t) > 1)
            raise ValueError(f"taxonomy: tag {dup!r} is listed twice")
        for child, parent in self.parents.items():
            if child not in known:
                raise ValueError(f"taxonomy: parents names {child!r}, which is not one of its tags")
            if parent is not None and parent not in known:
                raise ValueError(f"taxonomy: parent {parent!r} of {child!r} is not one of its tags")
            if parent == child:
                raise ValueError(f"taxonomy: tag {child!r} is its own parent")
        aliases = {}
        for tag, names in self.aliases.items():
            if tag not in known:
                raise ValueError(f"taxonomy: aliases name {tag!r}, which is not one of its tags")
            if isinstance(names, str):
                raise ValueError(f"taxonomy: aliases of {tag!r} must be a list of names, not one string")
            aliases[tag] = tuple(n for n in names if isinstance(n, str) and n.strip())
        object.__setattr__(self, "aliases", aliases)

    @classmethod
    def from_names(cls, names: Any) -> Taxonomy:
        """A flat taxonomy: just the tag names (duplicates dropped, order kept)."""
        return cls(tags=tuple(dict.fromkeys(names)))
