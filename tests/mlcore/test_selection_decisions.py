"""Ranking by the tagger's real decisions (``selected``): post-processing, not ``p >= threshold``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from mlcore.postprocess import ExclusiveGroup, PostProcessConfig, postprocess_scores
from mlcore.selection import STRATEGIES, StoredProbabilities, rank, review_order
from mlcore.selection.adapters import _modal_multilabel
from mlcore.selection.uncertainty import any_wrong_decision, expected_wrong_decisions
from mlcore.simulate import selected_matrix

CLASSES = ["clothing", "dress", "gown", "red", "blue"]
# dress and gown are kinds of clothing (closure selects clothing with either); a product is at most one of
# dress / gown and at most one colour (exclusive groups, as mlcore.tagger.exclusive learns them).
CONFIG = PostProcessConfig(
    parents={"clothing": None, "dress": "clothing", "gown": "clothing", "red": None, "blue": None},
    exclusive_groups=[
        ExclusiveGroup(tags=("dress", "gown"), rule="at_most_one"),
        ExclusiveGroup(tags=("red", "blue"), rule="at_most_one"),
    ],
)
THRESHOLDS = np.full(len(CLASSES), 0.5, dtype=np.float32)
PROBS = np.array(
    [
        # A dress whose parent scored low: the threshold leaves "clothing" out (wrong with 0.05), closure
        # selects it (wrong with 0.95). Thresholds: 0.05 + 0.45 + 0.02 + 0.02 + 0.02 = 0.56; real: 1.46.
        [0.05, 0.55, 0.02, 0.02, 0.02],
        # Nothing post-processing changes: 0.10 + 0.30 + 0.02 + 0.30 + 0.02 = 0.74 either way.
        [0.90, 0.30, 0.02, 0.30, 0.02],
        # Dress and gown both over threshold; the group keeps dress, so gown (0.85) is a decision "no".
        # Thresholds: 0.05 + 0.10 + 0.15 + 0.01 + 0.01 = 0.32; real: 0.05 + 0.10 + 0.85 + 0.02 = 1.02.
        [0.95, 0.90, 0.85, 0.01, 0.01],
    ],
    dtype=np.float32,
)


def _postprocessed_decisions(probs: np.ndarray) -> np.ndarray:
    """The decisions the default tagger's post-processing makes, through mlcore.postprocess itself."""
    rows = [
        postprocess_scores(dict(zip(CLASSES, map(float, row))), default_threshold=0.5, config=CONFIG)
        for row in probs
    ]
    return np.array([[any(s.tag == c and s.selected for s in row) for c in CLASSES] for row in rows])


def test_post_processing_decisions_change_the_expected_errors_and_the_order():
    selected = _postprocessed_decisions(PROBS)
    # The premise: closure added "clothing" to product 0, the group dropped "gown" from product 2.
    assert selected[0].tolist() == [True, True, False, False, False]
    assert selected[2].tolist() == [True, True, False, False, False]
    assert not np.array_equal(selected, PROBS >= THRESHOLDS)

    np.testing.assert_allclose(expected_wrong_decisions(PROBS, THRESHOLDS), [0.56, 0.74, 0.32], atol=1e-6)
    np.testing.assert_allclose(
        expected_wrong_decisions(PROBS, THRESHOLDS, selected), [1.46, 0.74, 1.02], atol=1e-6
    )
    by_thresholds = review_order(rank(PROBS, strategy="expected_errors", thresholds=THRESHOLDS))
    by_decisions = review_order(
        rank(PROBS, strategy="expected_errors", thresholds=THRESHOLDS, selected=selected)
    )
    assert list(by_thresholds) == [1, 0, 2]
    assert list(by_decisions) == [0, 2, 1]
    # P(at least one wrong decision) follows the same decisions.
    assert any_wrong_decision(PROBS, THRESHOLDS, selected)[0] > any_wrong_decision(PROBS, THRESHOLDS)[0]
    assert (
        list(review_order(rank(PROBS, strategy="any_error", thresholds=THRESHOLDS, selected=selected)))[0]
        == 0
    )


def test_sparse_and_dense_decisions_rank_alike_across_blocks(monkeypatch):
    # Small blocks, so the decisions are read block by block alongside the probabilities, on threads.
    monkeypatch.setattr("mlcore.selection.base.ROW_BLOCK", 7)
    rng = np.random.default_rng(4)
    probs = rng.random((60, len(CLASSES))).astype(np.float32)
    selected = _postprocessed_decisions(probs)
    for name in ["expected_errors", "any_error", "expected_errors_mixed", "max_score", "gradient_embedding"]:
        dense = rank(probs, strategy=name, thresholds=THRESHOLDS, selected=selected, batch_size=10, seed=2)
        csr = rank(
            probs,
            strategy=name,
            thresholds=THRESHOLDS,
            selected=sparse.csr_matrix(selected),
            batch_size=10,
            seed=2,
        )
        np.testing.assert_array_equal(dense, csr, err_msg=name)
    expected = expected_wrong_decisions(probs, THRESHOLDS, selected)
    mixed = review_order(
        rank(
            probs,
            strategy="expected_errors_mixed",
            thresholds=THRESHOLDS,
            selected=sparse.csr_matrix(selected),
            batch_size=20,
            seed=1,
        )
    )
    # Three quarters of the batch are the 15 largest expected error counts under the real decisions.
    assert set(np.argsort(-expected, kind="stable")[:15]) <= set(mixed[:20])


def test_decisions_that_match_the_thresholds_change_nothing():
    rng = np.random.default_rng(5)
    probs = rng.random((40, len(CLASSES))).astype(np.float32)
    probs[:, 0] = np.maximum(probs[:, 0], 0.6)  # every product has a tag over threshold (no min_selected)
    same = probs >= THRESHOLDS
    for name in sorted(STRATEGIES):
        if STRATEGIES[name].uses_features:
            continue
        np.testing.assert_array_equal(
            rank(probs, strategy=name, thresholds=THRESHOLDS, seed=3),
            rank(probs, strategy=name, thresholds=THRESHOLDS, selected=same, seed=3),
            err_msg=name,
        )


def test_modal_adapter_predicts_the_given_decisions():
    selected = _postprocessed_decisions(PROBS)
    adapter = StoredProbabilities(PROBS, thresholds=THRESHOLDS, selected=selected)
    np.testing.assert_array_equal(adapter.predict(adapter.index(3)), selected.astype(np.int8))
    # modAL's avg_score is mean(p * (decision - 1/2)): closure's "clothing" on product 0 counts +0.05 / 2
    # instead of -0.05 / 2, the group's dropped gown on product 2 counts -0.85 / 2 instead of +0.85 / 2.
    avg_score = _modal_multilabel("avg_score", higher_is_worse=True)
    shift = avg_score(PROBS, THRESHOLDS, selected=selected) - avg_score(PROBS, THRESHOLDS)
    np.testing.assert_allclose(shift, [0.05 / len(CLASSES), 0.0, -0.85 / len(CLASSES)], atol=1e-6)


def test_decisions_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="selected has shape"):
        rank(PROBS, strategy="expected_errors", selected=np.zeros((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="selected has shape"):
        StoredProbabilities(PROBS, selected=np.zeros((2, 5), dtype=bool))


class _Fitted:
    classes_ = CLASSES


def test_simulation_turns_selected_tags_into_the_decision_matrix():
    tags = [["clothing", "dress"], [], ["red", "not-a-class"]]
    matrix = selected_matrix(_Fitted(), tags)
    assert matrix.dtype == bool and matrix.shape == (3, len(CLASSES))
    assert [list(np.flatnonzero(row)) for row in matrix] == [[0, 1], [], [3]]
