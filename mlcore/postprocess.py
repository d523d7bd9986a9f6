"""From per-tag scores to the suggestions a reviewer sees: thresholds and tag filtering/merging.

Order of the steps (each one documented on :func:`postprocess_scores`): alias merge, blocked tags,
thresholds, exclusive groups, cap on selected tags, minimum selected, hierarchy closure, top-k cut of the
list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcore.types import TagScore

__all__ = ["ExclusiveGroup", "PostProcessConfig", "ancestors_of", "postprocess_scores"]


@dataclass(frozen=True)
class ExclusiveGroup:
    """Tags of which a product carries at most one (``at_most_one``) or exactly one (``exactly_one``)."""

    tags: tuple[str, ...]
    rule: str


@dataclass
class PostProcessConfig:
    """Tag filtering and merging applied at predict time.

    - ``aliases``: alias -> canonical tag; an alias's score goes to its canonical tag (max of both).
    - ``parents``: tag -> parent tag (None for a root); with ``close_hierarchy`` a selected tag selects
      all its ancestors too.
    - ``blocked``: tags never suggested.
    - ``max_selected``: at most this many tags are selected per product (None: no cap).
    - ``min_selected``: at least this many are selected (the best-scored ones), even under threshold.
    - ``exclusive_groups``: tags that exclude each other, each group with its rule (``at_most_one``: only
      the best-scored selected member stays; ``exactly_one``: and the best-scored member is selected when
      none is); learned by the tagger (:mod:`mlcore.tagger.exclusive`).
    """

    aliases: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    blocked: frozenset[str] | set[str] = field(default_factory=frozenset)
    close_hierarchy: bool = True
    max_selected: int | None = None
    min_selected: int = 1
    exclusive_groups: list[ExclusiveGroup] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_selected is not None and self.max_selected < 1:
            raise ValueError(f"max_selected must be >= 1 or None, got {self.max_selected}")
        if self.min_selected < 0:
            raise ValueError(f"min_selected must be >= 0, got {self.min_selected}")
        if self.max_selected is not None and self.min_selected > self.max_selected:
            raise ValueError("min_selected cannot exceed max_selected")
        self.blocked = frozenset(self.blocked)
        for group in self.exclusive_groups:
            if group.rule not in ("at_most_one", "exactly_one"):
                raise ValueError(
                    f"exclusive group rule must be at_most_one or exactly_one, got {group.rule!r}"
                )

    def group_index(self) -> dict[str, int]:
        """Tag -> index of its exclusive group. Cached per groups list: the tagger assigns a new list."""
        cached = getattr(self, "_group_index", None)
        if cached is None or cached[0] is not self.exclusive_groups:
            index = {tag: g for g, group in enumerate(self.exclusive_groups) for tag in group.tags}
            cached = (self.exclusive_groups, index)
            self._group_index = cached
        return cached[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "aliases": dict(self.aliases),
            "parents": dict(self.parents),
            "blocked": sorted(self.blocked),
            "close_hierarchy": self.close_hierarchy,
            "max_selected": self.max_selected,
            "min_selected": self.min_selected,
            "exclusive_groups": [{"tags": list(g.tags), "rule": g.rule} for g in self.exclusive_groups],
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
            exclusive_groups=[
                ExclusiveGroup(tags=tuple(g["tags"]), rule=str(g["rule"]))
                for g in d.get("exclusive_groups") or ()
            ],
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
       then each exclusive group keeps only its best-scored selected member, and an ``exactly_one`` group
       with none selected gets its best-scored member (among the scored tags);
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
    if cfg.exclusive_groups:
        selected = _apply_exclusive(selected, ranked, cfg)
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
        if cfg.exclusive_groups:
            chosen = _resolve_closure_conflicts(chosen, merged, cfg)
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


def _apply_exclusive(
    selected: list[str], ranked: list[tuple[str, float]], cfg: PostProcessConfig
) -> list[str]:
    """Step 3's group rules on the selected tags (``ranked``: the scored tags, best first). Only the
    scored tags are visited (a product has a few dozen), not every group's members."""
    group_of = cfg.group_index()
    keep = set(selected)
    best_of: dict[int, str] = {}
    selected_in: dict[int, list[str]] = {}
    for tag, _ in ranked:  # best first: the first member seen is a group's best
        g = group_of.get(tag)
        if g is None:
            continue
        best_of.setdefault(g, tag)
        if tag in keep:
            selected_in.setdefault(g, []).append(tag)
    for g, best in best_of.items():
        chosen = selected_in.get(g, [])
        if len(chosen) >= 2:
            keep.difference_update(chosen[1:])
        elif not chosen and cfg.exclusive_groups[g].rule == "exactly_one":
            keep.add(best)
    return [t for t, _ in ranked if t in keep]


def _resolve_closure_conflicts(
    chosen: set[str], merged: dict[str, float], cfg: PostProcessConfig
) -> set[str]:
    """After the hierarchy closure a group can hold two members: the one its rule picked and the parent a
    more specific selected tag implies. The implied one wins (the specific decision carries the path)."""
    implied = {anc for t in chosen for anc in ancestors_of(t, cfg.parents)}
    out = set(chosen)
    for group in cfg.exclusive_groups:
        members = [t for t in group.tags if t in out]
        if len(members) < 2:
            continue
        implied_members = [t for t in members if t in implied] or members
        winner = max(implied_members, key=lambda t: merged.get(t, 0.0))
        out.difference_update(t for t in members if t != winner)
    return out
