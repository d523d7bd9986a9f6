from __future__ import annotations

import json

import numpy as np
import pytest

from mlcore.metrics import evaluate_tag_sets
from mlcore.postprocess import PostProcessConfig, ancestors_of, postprocess_scores
from mlcore.thresholds import apply_thresholds, tune_thresholds


def test_metrics_against_hand_computed_values():
    gold = [["a", "b"], ["c"]]
    selected = [["a"], ["c", "d"]]
    ranked = [["a", "c", "b"], ["d", "c"]]
    m = evaluate_tag_sets(gold, selected, ranked)
    # tp = 2, fp = 1 (d), fn = 1 (b)
    assert m["micro_precision"] == pytest.approx(2 / 3)
    assert m["micro_recall"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(2 / 3)
    assert m["p@1"] == pytest.approx(0.5)
    assert m["p@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert m["r@5"] == pytest.approx(1.0)
    assert m["per_tag"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_tag"]["a"]["f1"] == 1.0
    # macro over the gold tags only: a (1), b (0), c (1); d is a false positive for micro only
    assert m["macro_f1"] == pytest.approx(2 / 3)
    json.dumps(m)  # plain JSON


def test_metrics_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="gold has 2 products"):
        evaluate_tag_sets([["a"], ["b"]], [["a"]])


def test_postprocess_thresholds_min_one_and_top_k():
    scores = {f"t{i}": 0.05 * i for i in range(1, 30)}
    out = postprocess_scores(scores, default_threshold=0.9, top_k=20)
    assert len(out) == 20
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)
    assert {s.tag for s in out if s.selected} == {
        "t29",
        "t28",
        "t27",
        "t26",
        "t25",
        "t24",
        "t23",
        "t22",
        "t21",
        "t20",
        "t19",
        "t18",
    }
    nothing = postprocess_scores({"a": 0.1, "b": 0.2}, default_threshold=0.9)
    assert [s.tag for s in nothing if s.selected] == ["b"]  # minimum one tag


def test_postprocess_aliases_blocked_cap_and_hierarchy():
    cfg = PostProcessConfig(
        aliases={"tee": "t-shirt"},
        parents={"t-shirt": "topwear", "topwear": "apparel", "apparel": None},
        blocked={"spam"},
        max_selected=2,
    )
    out = postprocess_scores(
        {"tee": 0.9, "t-shirt": 0.6, "spam": 0.99, "red": 0.7, "blue": 0.65},
        default_threshold=0.5,
        config=cfg,
    )
    tags = {s.tag: s for s in out}
    assert "tee" not in tags and "spam" not in tags
    assert tags["t-shirt"].score == pytest.approx(0.9)
    assert tags["t-shirt"].selected and tags["red"].selected and not tags["blue"].selected  # cap 2
    # closure adds ancestors (selected, with the child's score when they had none)
    assert tags["topwear"].selected and tags["apparel"].selected
    assert ancestors_of("t-shirt", cfg.parents) == ["topwear", "apparel"]
    assert ancestors_of("a", {"a": "b", "b": "a"}) == ["b"]  # a cycle is cut


def test_postprocess_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="max_selected"):
        PostProcessConfig(max_selected=0)
    cfg = PostProcessConfig(aliases={"x": "y"}, blocked={"z"}, min_selected=0)
    assert PostProcessConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_threshold_tuning_finds_the_separating_cut():
    rng = np.random.default_rng(0)
    y = rng.random((400, 3)) < 0.3
    y[np.arange(400), rng.integers(0, 3, 400)] = True  # every product has a tag (min-one rule)
    proba = np.where(y, 0.55 + 0.4 * rng.random(y.shape), 0.45 * rng.random(y.shape)).astype(np.float32)
    global_t, per_tag, f1 = tune_thresholds(y, proba)
    assert 0.45 <= global_t <= 0.56
    assert f1 == pytest.approx(1.0)
    decided = apply_thresholds(proba, per_tag)
    assert (decided == y).mean() > 0.99


def test_per_tag_thresholds_are_kept_only_where_they_generalise():
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.random((n, 2)) < 0.4
    # Tag 0 is separable at 0.2 and tag 1 at 0.8: no single cut serves both, per-tag cuts must stay.
    shifted = np.column_stack(
        [np.where(y[:, 0], 0.2 + 0.1 * rng.random(n), 0.2 * rng.random(n)),
         np.where(y[:, 1], 0.8 + 0.2 * rng.random(n), 0.8 * rng.random(n))]
    ).astype(np.float32)  # fmt: skip
    global_t, per_tag, _ = tune_thresholds(y, shifted, min_selected=0)
    assert per_tag[0] < 0.3 < 0.7 < per_tag[1]
    # Calibrated noise: the same rule everywhere, so the best cut is global; in-slice per-tag cuts would
    # only fit the noise and are replaced by it.
    noisy = rng.random((n, 2)).astype(np.float32)
    labels = rng.random((n, 2)) < noisy
    global_t, per_tag, _ = tune_thresholds(labels, noisy, min_selected=0)
    assert np.all(per_tag == np.float32(global_t))
