"""Which of the model's selected tags start checked on the review card (pure: no Django, so benchmarks that
measure the card without a server import it too).

The model's selection serves the catalog (what is exported and auto-approved): its thresholds maximise F1,
and its post-processing gives a product at least one tag, one per exclusive group and every level of a
path, so with few labels it selects many tags it rates well below even odds. On the card each such tag
costs a person an untick when wrong and a tick when right, so a selected tag starts checked only when the
model rates it at least ``min_score`` likely (``REVIEW_PRECHECK_MIN_SCORE``, 0.4). The product's best
selected tag starts checked whatever its score when none reaches the floor: a catalog product has at least
one tag, so an empty card is never right as suggested, and checking the model's best guess keeps the cards
that guess gets right one key away. Measured on unseen products of the seven shared sets at 300 and 2,000
labels (``bench/precheck_bench.py``, bench/README.md "Pre-checked chips"): fewer actions per card than
checking every selected tag (most at few labels: 3.03 -> 2.64 on amazon_uk_toys, 3.98 -> 3.39 on
bigbasket_grocery at 300), and as many cards right as suggested; 0.4 rather than the 0.5 break-even of one
tag because the best of a group that must hold one tag is right at p 0.4 more often than not checking it is.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


def prechecked_keys(suggestions: Iterable[tuple[Key, float, bool]], *, min_score: float) -> set[Key]:
    """The keys of ``suggestions`` (key, score, selected) that start checked: the selected ones scoring at
    least ``min_score``, or, when none does, the best selected one."""
    picks = [(key, score) for key, score, selected in suggestions if selected]
    checked = {key for key, score in picks if score >= min_score}
    if picks and not checked:
        checked.add(max(picks, key=lambda pick: pick[1])[0])
    return checked
