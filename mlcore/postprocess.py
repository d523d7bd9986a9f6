"""From per-tag scores to the suggestions a reviewer sees: thresholds and tag filtering/merging.

Order of the steps (each one documented on :func:`postprocess_scores`): alias merge, blocked tags,
thresholds, cap on selected tags, minimum selected, hierarchy closure, top-k cut of the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcore.types import TagScore

__all__ = ["PostProcessConfig", "ancestors_of", "postprocess_scores"]


@dataclass
class PostProcessConfig:
    """Tag filtering and merging applied at predict time.

    - ``aliases``: alias -> canonical tag; an alias's score goes to its canonical tag (max of both).
    - ``parents``: tag -> parent tag (None for a root); with ``close_hierarchy`` a selected tag selects
      all its ancestors too.
    - ``blocked``: tags never suggested.
    - ``max_selected``: at most this many tags are selected per product (None: no cap).
    - ``min_selected``: at least this many are selected (the best-scored ones), even under threshold.
    """

    aliases: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    blocked: frozenset[str] | set[str] = field(default_factory=frozenset)
    close_hierarchy: bool = True
    max_selected: int | None = None
    min_selected: int = 1

    def __post_init__(self) -> None:
        if self.max_selected is not None and self.max_selected < 1:
            raise ValueError(f"max_selected must be >= 1 or None, got {self.max_selected}")
        if self.min_selected < 0:
            raise ValueError(f"min_selected must be >= 0, got {self.min_selected}")
        if self.max_selected is not None and self.min_selected > self.max_selected:
            raise ValueError("min_selected cannot exceed max_selected")
        self.blocked = frozenset(self.blocked)

    def to_dict(self) -> dict[str, Any]:
        return {
            "aliases": dict(self.aliases),
            "parents": dict(self.parents),
            "blocked": sorted(self.blocked),
            "close_hierarchy": self.close_hierarchy,
            "max_selected": self.max_selected,
            "min_selected": self.min_selected,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PostProcessConfig:
        return cls(
            aliases=dict(d.get("aliases") or {}),
            parents=dict(d.get("parents") or {}),
            blocked=frozenset(d.get("blocked") or ()),
            close_hierarchy=bool(d.get("close_hierarchy", True)),
            max_selected=d.get("max_selected"),
            min_selected=int(d.get("min_selected", 1)),
        )


def ancestors_of(tag: str, parents: Mapping[str, str | None]) -> list[str]:
    """Parent, grandparent, ... of ``tag`` (cycles in a bad taxonomy are cut, not looped on)."""
    out: list[str] = []
    seen = {tag}
    current = parents.get(tag)
    while current is not None and current not in seen:
        out.append(current)
        seen.add(current)
        current = parents.get(current)
    return out


def postprocess_scores(
    scores: Mapping[str, float],
    *,
    thresholds: Mapping[str, float] | None = None,
    default_threshold: float = 0.5,
    config: PostProcessConfig | None = None,
    top_k: int = 20,
) -> list[TagScore]:
    """Turn ``{tag: score}`` into a ranked list of :class:`TagScore`.

    1. aliases are merged into their canonical tag (highest score wins);
    2. blocked tags are dropped;
    3. a tag is selected when its score reaches its threshold (``thresholds[tag]`` or ``default_threshold``);
    4. at most ``max_selected`` selected tags are kept (best first);
    5. if fewer than ``min_selected`` are selected, the best-scored remaining tags are selected;
    6. with a parents map and ``close_hierarchy``, ancestors of selected tags are selected too (an
       ancestor without a score of its own gets its child's score, so it appears in the list);
    7. the list is sorted by score and cut to ``top_k`` entries, never dropping a selected tag.
    """
    cfg = config or PostProcessConfig()
    thresholds = thresholds or {}
    merged: dict[str, float] = {}
    for tag, score in scores.items():
        canonical = cfg.aliases.get(tag, tag)
        if canonical in cfg.blocked or tag in cfg.blocked:
            continue
        score = float(score)
        if score > merged.get(canonical, float("-inf")):
            merged[canonical] = score
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    selected = [t for t, s in ranked if s >= thresholds.get(t, default_threshold)]
    if cfg.max_selected is not None:
        selected = selected[: cfg.max_selected]
    if len(selected) < cfg.min_selected:
        chosen = set(selected)
        for t, _ in ranked:
            if len(selected) >= cfg.min_selected:
                break
            if t not in chosen:
                selected.append(t)
                chosen.add(t)
    chosen = set(selected)
    if cfg.close_hierarchy and cfg.parents:
        for t in list(selected):
            for anc in ancestors_of(t, cfg.parents):
                if anc in cfg.blocked:
                    continue
                if anc not in chosen:
                    chosen.add(anc)
                if anc not in merged or merged[anc] < merged[t]:
                    merged[anc] = max(merged.get(anc, float("-inf")), merged[t])
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    out = [TagScore(tag=t, score=s, selected=t in chosen) for t, s in ranked]
    if len(out) > top_k:
        head = out[:top_k]
        extra = [ts for ts in out[top_k:] if ts.selected]
        if extra:
            keep = top_k - len(extra)
            unselected_head = [ts for ts in head if not ts.selected]
            drop = set(id(ts) for ts in unselected_head[max(0, len(unselected_head) - len(extra)) :])
            head = [ts for ts in head if id(ts) not in drop]
            out = sorted(head[: max(keep, 0) + len(extra)] + extra, key=lambda ts: (-ts.score, ts.tag))
        else:
            out = head
    return out
