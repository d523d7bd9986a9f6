"""Exclusive tag groups: learned from labels, a rule per group chosen on held-out scores, applied at predict
time (mlcore.tagger.exclusive, mlcore.postprocess)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from mlcore.postprocess import ExclusiveGroup, PostProcessConfig, postprocess_scores
from mlcore.tagger import get_tagger, load_tagger
from mlcore.tagger.exclusive import apply_group_rules, choose_group_rules, learn_exclusive_groups


def _facet_labels(n: int = 600, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Columns: colour (3 values, one per product), gender (2 values, one per product), 'sale' on a third
    of the products independently, and two rare tags (4 products each, never together by chance)."""
    rng = np.random.default_rng(seed)
    names = ["red", "blue", "green", "men", "women", "sale", "rare-a", "rare-b"]
    y = np.zeros((n, len(names)), dtype=bool)
    y[np.arange(n), rng.choice(3, size=n, p=[0.5, 0.3, 0.2])] = True
    y[np.arange(n), 3 + rng.integers(0, 2, size=n)] = True
    y[:, 5] = rng.random(n) < 0.33
    y[:4, 6] = True
    y[4:8, 7] = True
    return y, names


def test_groups_are_the_facets_and_chance_exclusions_are_not_grouped():
    y, names = _facet_labels()
    groups = [sorted(names[j] for j in g) for g in learn_exclusive_groups(sparse.csr_matrix(y))]
    assert sorted(groups) == [["blue", "green", "red"], ["men", "women"]]
    # A tag that comes with a facet value now and then is not exclusive with it.
    y[:30, 0] = y[:30, 1] = True  # 30 products red and blue
    groups = [sorted(names[j] for j in g) for g in learn_exclusive_groups(y)]
    assert ["men", "women"] in groups and not any("red" in g and "blue" in g for g in groups)


def test_rules_keep_the_best_member_and_force_only_scored_ones():
    proba = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.1], [0.0, 0.0, 0.0]], dtype=np.float32)
    decided = proba >= 0.5
    group = np.array([0, 1, 2])
    at_most = apply_group_rules(decided, proba, [(group, "at_most_one")])
    assert at_most.tolist() == [[True, False, False], [False, False, False], [False, False, False]]
    exactly = apply_group_rules(decided, proba, [(group, "exactly_one")])
    # Row 1 had none: its best member comes in; row 2 has no score at all in the group: left alone.
    assert exactly.tolist() == [[True, False, False], [False, True, False], [False, False, False]]
    assert decided.tolist() == (proba >= 0.5).tolist()  # a copy, not in place
    with pytest.raises(ValueError, match="unknown group rule"):
        apply_group_rules(decided, proba, [(group, "one")])


def test_rule_choice_follows_held_out_evidence():
    rng = np.random.default_rng(1)
    n = 400
    gold = rng.integers(0, 3, size=n)
    y = np.zeros((n, 3), dtype=bool)
    y[np.arange(n), gold] = True
    # Scores that rank the right value first but often sit under the threshold, sometimes two over it.
    proba = rng.uniform(0.0, 0.3, size=(n, 3)).astype(np.float32)
    proba[np.arange(n), gold] = rng.uniform(0.3, 0.9, size=n)
    decided = proba >= 0.5
    rules = choose_group_rules(y, proba, decided, [np.array([0, 1, 2])])
    assert [rule for _, rule in rules] == ["exactly_one"]
    # A group that most products lack: forcing a member in would only add wrong tags.
    sparse_gold = np.zeros((n, 3), dtype=bool)
    sparse_gold[:20, 0] = True
    low = rng.uniform(0.0, 0.4, size=(n, 3)).astype(np.float32)
    low[:20, 0] = 0.9
    kept = choose_group_rules(sparse_gold, low, low >= 0.5, [np.array([0, 1, 2])])
    assert kept == []
    # Too few changed decisions: no rule, however it scores.
    assert choose_group_rules(y[:2], proba[:2], decided[:2], [np.array([0, 1, 2])], min_changes=3) == []


def test_postprocess_applies_groups_and_round_trips():
    config = PostProcessConfig(
        exclusive_groups=[
            ExclusiveGroup(tags=("red", "blue", "green"), rule="at_most_one"),
            ExclusiveGroup(tags=("men", "women"), rule="exactly_one"),
        ]
    )
    scores = {"red": 0.9, "blue": 0.7, "men": 0.3, "women": 0.2, "sale": 0.6}
    out = postprocess_scores(scores, default_threshold=0.5, config=config)
    assert {t.tag for t in out if t.selected} == {"red", "men", "sale"}
    again = PostProcessConfig.from_dict(config.to_dict())
    assert again == config
    assert postprocess_scores(scores, default_threshold=0.5, config=again) == out
    assert PostProcessConfig.from_dict({}).exclusive_groups == []  # artifacts written before groups
    with pytest.raises(ValueError, match="exclusive group rule"):
        PostProcessConfig(exclusive_groups=[ExclusiveGroup(tags=("a", "b"), rule="many")])


def test_hierarchy_closure_wins_over_a_group_pick():
    # "shoes" picked by the level-2 group rule, but the selected leaf "sandals" implies "footwear-other".
    config = PostProcessConfig(
        parents={"sandals": "footwear-other"},
        exclusive_groups=[ExclusiveGroup(tags=("shoes", "footwear-other"), rule="exactly_one")],
    )
    scores = {"shoes": 0.4, "footwear-other": 0.3, "sandals": 0.8}
    selected = {t.tag for t in postprocess_scores(scores, default_threshold=0.5, config=config) if t.selected}
    assert selected == {"sandals", "footwear-other"}


def test_default_tagger_learns_the_facets_of_a_real_sample(en_fashion, runtime, tmp_path):
    """myntra_fashion_attrs sample: one gender, one season, one usage per product; the fitted tagger finds
    those groups, keeps a rule only where its held-out scores gain, and saves them with the model."""
    tagger = get_tagger("default", hidden=64, epochs=8, max_length=32, runtime=runtime)
    tagger.fit(en_fashion)
    groups = tagger.postprocess.exclusive_groups
    assert groups, "the sample's facets (gender, season, top-level category) give at least one rule"
    assert tagger.info_["exclusive_groups"] == [[len(g.tags), g.rule] for g in groups]
    labels = {t for r in en_fashion for t in r.tags}
    for group in groups:
        members = set(group.tags)
        assert members <= labels
        two = sum(len(members & set(r.tags)) >= 2 for r in en_fashion)
        assert two <= 0.01 * len(en_fashion)  # (almost) never two on one product
    tagger.save(tmp_path / "model")
    assert load_tagger(tmp_path / "model", runtime=runtime).postprocess.exclusive_groups == groups
    learned = [sorted(g) for g in learn_exclusive_groups(_labels(en_fashion, tagger.classes_))]
    assert any({tagger.classes_[j] for j in g} >= {"gender:men", "gender:women"} for g in learned)


def _labels(records, classes) -> sparse.csr_matrix:
    col = {t: j for j, t in enumerate(classes)}
    rows = [i for i, r in enumerate(records) for t in r.tags if t in col]
    cols = [col[t] for r in records for t in r.tags if t in col]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(records), len(classes)))
