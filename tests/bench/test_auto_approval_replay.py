"""bench/auto_approval_replay.py: the measures it prints over a kept effort-bench run."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))  # as when a bench runs as a script
replay = importlib.import_module("auto_approval_replay")


def test_expected_wrong_reads_selected_scores_as_right_with_their_probability():
    assert math.isclose(replay.expected_wrong([("a", 0.9, True), ("b", 0.2, False)]), 0.1 + 0.2)


def test_sure_region_keeps_products_sure_of_every_stored_score():
    products = [
        ([("a", 0.99, True), ("b", 0.01, False)], {"a"}),  # sure, exactly right
        ([("a", 0.97, True), ("c", 0.96, True)], {"a"}),  # sure, one pair wrong
        ([("a", 0.99, True), ("b", 0.5, False)], {"a", "b"}),  # unsure of "b": outside the region
        ([("b", 0.02, False)], {"b"}),  # nothing says yes: outside
    ]
    region = replay.sure_region(products, 0.95)
    assert region["products"] == 2 and region["pairs"] == 3
    assert math.isclose(region["precision"], 2 / 3)
    assert math.isclose(region["exact"], 0.5)
    empty = replay.sure_region(products[2:], 0.95)
    assert empty["products"] == 0 and math.isnan(empty["precision"])
