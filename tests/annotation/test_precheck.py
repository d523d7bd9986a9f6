"""Which selected suggestions start checked on the review card (annotation.selectors.precheck)."""

from __future__ import annotations

import pytest

from annotation.selectors.precheck import prechecked_keys


@pytest.mark.parametrize(
    ("suggestions", "expected"),
    [
        # Selected and at least 0.4 likely: checked; a selected tag below the floor starts open.
        ([("red", 0.9, True), ("wool", 0.3, True), ("blue", 0.6, False)], {"red"}),
        # None of the selected tags reaches the floor: the best of them still starts checked.
        ([("wool", 0.3, True), ("cotton", 0.35, True), ("blue", 0.6, False)], {"cotton"}),
        # The floor itself counts.
        ([("red", 0.4, True), ("wool", 0.39, True)], {"red"}),
        # Nothing selected: nothing checked, whatever the scores.
        ([("blue", 0.9, False)], set()),
        ([], set()),
    ],
)
def test_selected_tags_from_the_floor_or_the_best_pick(suggestions, expected) -> None:
    assert prechecked_keys(suggestions, min_score=0.4) == expected


def test_floor_zero_checks_every_selected_tag() -> None:
    rows = [("red", 0.9, True), ("wool", 0.05, True), ("blue", 0.6, False)]
    assert prechecked_keys(rows, min_score=0.0) == {"red", "wool"}
