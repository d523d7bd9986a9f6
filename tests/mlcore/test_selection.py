"""mlcore.selection: every strategy over probabilities of a real (small) catalog sample, the modAL adapter,
cold start, the expected-wrong-decisions strategies on a hand-made score matrix, and bad input.
numpy/scikit-learn/modAL only, no torch model, no Django (that the app's queue ranks with ``DEFAULT_STRATEGY`` is
tested in tests/annotation/test_queue_priorities.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from mlcore import selection
from mlcore.selection import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    StoredProbabilities,
    cold_start_rank,
    rank,
    review_order,
    threshold_uncertainty,
)
from mlcore.selection import base as selection_base
from mlcore.selection.uncertainty import expected_wrong_decisions
from tests.mlcore.conftest import DATA

# The first 500 products of myntra_fashion_attrs (DEV), and 40 reviews of each of the 9 categories of
# zh_online_shopping_10cats grouped by category in id order (tests/data/README.md).
FASHION = DATA / "mlcore_selection_fashion.jsonl"
ZH_REVIEWS = DATA / "mlcore_selection_zh_reviews.jsonl"
N_TRAIN = 200


def _rows(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def fashion_probs() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Probabilities of a one-vs-rest TF-IDF model trained on 200 real products, for 300 others."""
    rows = _rows(FASHION)
    train, pool = rows[:N_TRAIN], rows[N_TRAIN:]
    binarizer = MultiLabelBinarizer().fit([r["tags"] for r in train])
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([r["title"] for r in train])
    model = OneVsRestClassifier(LogisticRegression(C=10, solver="liblinear")).fit(
        vectorizer.transform([r["title"] for r in train]), binarizer.transform([r["tags"] for r in train])
    )
    probs = model.predict_proba(vectorizer.transform([r["title"] for r in pool])).astype(np.float32)
    features = selection.text_features([r["title"] for r in pool])
    return probs, features, pool


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_places_every_product_once(name, fashion_probs):
    probs, features, _ = fashion_probs
    kwargs = (
        {"features": features, "labeled_features": features[:30]} if STRATEGIES[name].uses_features else {}
    )
    priority = rank(probs, strategy=name, thresholds=0.3, batch_size=20, seed=3, **kwargs)
    assert priority.shape == (len(probs),)
    assert len(np.unique(priority)) == len(probs)
    assert priority.min() > 0 and priority.max() == 1.0
    again = rank(probs, strategy=name, thresholds=0.3, batch_size=20, seed=3, **kwargs)
    np.testing.assert_array_equal(priority, again)  # seeded: the stored queue is reproducible


def test_default_strategy_is_registered_and_described():
    assert DEFAULT_STRATEGY in STRATEGIES
    assert all(s.description for s in STRATEGIES.values())


def test_strategies_follow_their_uncertainty_measure(fashion_probs):
    """The first product of each per-row strategy is an extreme of its measure (ties broken at random)."""
    probs, _, _ = fashion_probs
    clipped = np.clip(probs.astype(np.float64), 1e-12, 1 - 1e-12)
    measures = {  # strategy -> per-row value the strategy maximises
        "min_confidence": -probs.min(axis=1),
        "avg_confidence": probs.mean(axis=1),
        "threshold_uncertainty": (1 - np.abs(probs - 0.3) / np.where(probs >= 0.3, 0.7, 0.3)).max(axis=1),
        "binary_uncertainty": np.minimum(probs, 1 - probs).max(axis=1),
        "binary_margin": -np.abs(2 * probs - 1).min(axis=1),
        "binary_entropy": -(clipped * np.log(clipped) + (1 - clipped) * np.log(1 - clipped)).sum(axis=1),
    }
    for name, measure in measures.items():
        order = review_order(rank(probs, strategy=name, thresholds=0.3))
        assert measure[order[0]] == pytest.approx(measure.max(), rel=1e-5), name
        assert measure[order[:50]].mean() > measure[order[-50:]].mean(), name


def test_adapter_runs_modal_strategy_functions(fashion_probs):
    from modAL import multilabel, uncertainty
    from modAL.batch import uncertainty_batch_sampling

    probs, features, _ = fashion_probs
    adapter = StoredProbabilities(probs, thresholds=0.3)
    X = adapter.index(len(probs))
    idx, _ = multilabel.min_confidence(adapter, X, n_instances=5)
    assert set(idx) == set(np.argsort(probs.min(axis=1))[:5])
    idx, _ = multilabel.avg_score(adapter, X, n_instances=5)
    assert len(set(idx)) == 5
    # Broken upstream on a learner without classes_; the adapter provides classes_ and predict.
    idx, _ = multilabel.max_loss(adapter, X, n_instances=5)
    assert len(set(idx)) == 5
    idx, _ = uncertainty.uncertainty_sampling(adapter, X, n_instances=5)
    assert set(idx) == set(np.argsort(probs.max(axis=1))[:5])
    np.testing.assert_array_equal(adapter.predict(X[:3]), (probs[:3] >= 0.3).astype(np.int8))
    # ranked batch needs X_training on the learner: the adapter carries it.
    batch_adapter = StoredProbabilities(probs, X_training=features[:10])
    batch_adapter.predict_proba = lambda X: probs  # the pool here is the feature matrix itself
    picked, _ = uncertainty_batch_sampling(batch_adapter, features, n_instances=10)
    assert len(set(picked)) == 10
    with pytest.raises(TypeError, match="only replays"):
        adapter.fit(X, probs)


def test_threshold_uncertainty_is_one_at_the_threshold_and_zero_at_the_ends():
    thresholds = np.array([0.2, 0.5], dtype=np.float32)
    block = np.array([[0.2, 0.5], [0.0, 1.0], [1.0, 0.0], [0.6, 0.25]], dtype=np.float32)
    values = threshold_uncertainty(block, thresholds)
    np.testing.assert_allclose(values[0], [1, 1])
    np.testing.assert_allclose(values[1], [0, 0])
    np.testing.assert_allclose(values[2], [0, 0])
    np.testing.assert_allclose(values[3], [1 - 0.4 / 0.8, 0.5], rtol=1e-6)


def test_batch_strategies_do_not_fill_a_batch_with_copies(fashion_probs):
    """40 copies of one product are the most uncertain rows; a diverse batch takes few of them."""
    probs, features, _ = fashion_probs
    probs = probs.copy()
    features = features.copy()
    probs[:40] = 0.3  # right at every threshold
    features[:40] = features[0]
    plain = review_order(rank(probs, strategy="threshold_uncertainty", thresholds=0.3, batch_size=20))[:20]
    assert np.all(plain < 40)
    for name in ("ranked_batch", "uncertainty_batch", "dense_uncertain", "gradient_embedding"):
        batch = review_order(rank(probs, strategy=name, thresholds=0.3, features=features, batch_size=20))[
            :20
        ]
        assert np.sum(batch < 40) <= 3, name


def test_gradient_embedding_starts_with_the_longest_gradient(fashion_probs):
    """BADGE's first pick is the product whose decisions the loss would move most: largest |p - (p >= t)|."""
    probs, features, _ = fashion_probs
    residual = probs - (probs >= 0.3)
    order = review_order(
        rank(probs, strategy="gradient_embedding", thresholds=0.3, features=features, batch_size=20)
    )
    sq_norm = (residual**2).sum(axis=1)
    assert sq_norm[order[0]] == sq_norm.max()  # duplicate titles tie; which of them leads is seeded
    # Later picks trade length for difference: the batch is not simply the 20 longest gradients.
    longest = set(np.argsort(-(residual**2).sum(axis=1))[:20])
    assert len(longest & set(order[:20])) < 20


def test_default_mixes_random_picks_from_outside_the_candidates():
    rng = np.random.default_rng(0)
    probs = rng.random((5000, 12), dtype=np.float32) * 0.2  # nothing near 0.5 except the chosen rows
    probs[:1000, 0] = 0.5
    batch = review_order(rank(probs, strategy="dense_uncertain", batch_size=40))[:40]
    outside = np.sum(batch >= 1000)
    assert 1 <= outside <= 10  # ~25% random over the whole pool, 4/5 of which lies outside the first 1000


def test_rank_reads_blocks_of_a_row_sliceable_store(fashion_probs, monkeypatch):
    probs, _, _ = fashion_probs

    slices = []

    class Rows:
        shape = probs.shape

        def __getitem__(self, key):
            if isinstance(key, slice):
                slices.append(key.stop - key.start)
            return probs[key]

    whole = rank(probs, strategy=DEFAULT_STRATEGY, thresholds=0.3)
    monkeypatch.setattr(selection_base, "ROW_BLOCK", 37)
    blocked = rank(Rows(), strategy=DEFAULT_STRATEGY, thresholds=0.3)
    np.testing.assert_array_equal(whole, blocked)
    assert slices and max(slices) == 37  # read in blocks, not as one array


def test_bad_input_is_named():
    probs = np.full((4, 3), 0.2, dtype=np.float32)
    with pytest.raises(ValueError, match="unknown selection strategy 'nope'"):
        rank(probs, strategy="nope")
    broken = probs.copy()
    broken[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2, tag column 1"):
        rank(broken, strategy="threshold_uncertainty")
    with pytest.raises(ValueError, match="row 3, tag column 0"):
        rank(np.vstack([probs[:3], [[1.5, 0, 0]]]), strategy="min_confidence")
    with pytest.raises(ValueError, match="tag column 1 has 1.0"):
        rank(probs, thresholds=np.array([0.3, 1.0, 0.3]))
    with pytest.raises(ValueError, match="2-D"):
        rank(np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match="features has 2 rows for 4"):
        rank(probs, features=np.zeros((2, 8)))
    with pytest.raises(ValueError, match="batch_size"):
        rank(probs, batch_size=0)
    assert rank(np.zeros((0, 3), dtype=np.float32)).shape == (0,)


def test_cold_start_covers_the_catalog_before_repeating_itself():
    """Real reviews of 9 product categories, grouped by category in id order: coverage beats id order."""
    sample = _rows(ZH_REVIEWS)
    assert len(sample) == 360 and len({r["tags"][0] for r in sample}) == 9
    priority = cold_start_rank([r["title"] for r in sample], n_clusters=30, seed=0)
    first = review_order(priority)[:30]
    covered = {sample[i]["tags"][0] for i in first}
    assert len(covered) >= 6, covered
    assert len({r["tags"][0] for r in sample[:30]}) == 1  # what id order would show
    english = _rows(FASHION)[:300]
    priority = cold_start_rank(features=selection.text_features([r["title"] for r in english]), n_clusters=25)
    assert len(np.unique(priority)) == 300
    with pytest.raises(ValueError, match="needs texts or features"):
        cold_start_rank()
    with pytest.raises(ValueError, match="text 1 is int"):
        cold_start_rank(["a shirt", 3])  # type: ignore[list-item]


def test_text_inputs_drive_the_diversity_strategies(fashion_probs):
    """``texts`` (a sequence or a lazy callable) replaces features; labelled texts steer away from the known."""
    probs, _, pool = fashion_probs
    titles = [r["title"] for r in pool]
    labeled = [r["title"] for r in _rows(FASHION)[:N_TRAIN]]
    calls = []

    def lazy(rows):
        calls.append(len(rows))
        return [titles[i] for i in rows]

    for name in ("dense_uncertain", "coverage", "ranked_batch", "vocabulary"):
        from_list = rank(probs, strategy=name, texts=titles, labeled_texts=labeled, thresholds=0.3, seed=1)
        from_callable = rank(probs, strategy=name, texts=lazy, labeled_texts=labeled, thresholds=0.3, seed=1)
        np.testing.assert_array_equal(from_list, from_callable)
    assert calls  # the callable was used, with row indices
    with pytest.raises(ValueError, match="texts has 3 entries"):
        rank(probs, texts=titles[:3])


def test_vocabulary_batch_brings_words_the_labelled_set_lacks(fashion_probs):
    probs, _, pool = fashion_probs
    titles = [r["title"] for r in pool]
    labeled = [r["title"] for r in _rows(FASHION)[:N_TRAIN]]
    known = {w for t in labeled for w in selection._words(t)}
    batch = review_order(
        rank(probs, strategy="vocabulary", texts=titles, labeled_texts=labeled, batch_size=20)
    )[:20]
    new_words = [len({w for w in selection._words(titles[i])} - known) for i in batch]
    everyone = np.mean([len(set(selection._words(t)) - known) for t in titles])
    assert np.mean(new_words) > 1.3 * everyone  # a quarter of the batch is random on purpose
    assert len({titles[i] for i in batch}) >= 19  # greedy picks never repeat a title; a random pick may


def test_expected_errors_ranks_by_expected_wrong_decisions_at_the_applied_thresholds():
    thresholds = np.array([0.3, 0.5, 0.7], dtype=np.float32)
    probs = np.array(
        [
            [0.95, 0.02, 0.01],  # sure and selected where it should be: 0.05 + 0.02 + 0.01 = 0.08
            [0.31, 0.50, 0.69],  # all on the fence: 0.69 (selected) + 0.50 (selected) + 0.69 = 1.88
            [0.20, 0.45, 0.90],  # 0.20 + 0.45 + 0.10 (selected) = 0.75
            [0.10, 0.10, 0.10],  # nothing over its threshold: the best tag is shown anyway, 0.9 + 0.1 + 0.1
        ],
        dtype=np.float32,
    )
    expected = expected_wrong_decisions(probs, thresholds)
    np.testing.assert_allclose(expected, [0.08, 1.88, 0.75, 1.10], atol=1e-6)
    order = review_order(rank(probs, strategy="expected_errors", thresholds=thresholds))
    assert list(order) == [1, 3, 2, 0]
    # modAL's 0.5-centred uncertainty, summed, ignores the thresholds and the at-least-one rule: the
    # product with nothing selected looks safe (0.3) and falls behind the third one (0.75).
    by_modal = review_order(rank(probs, strategy="binary_uncertainty_sum", thresholds=thresholds))
    assert list(by_modal) == [1, 2, 3, 0]
    # The probability of at least one wrong decision orders these the same way as the expected count.
    assert list(review_order(rank(probs, strategy="any_error", thresholds=thresholds))) == [1, 3, 2, 0]


def test_expected_errors_mixes_keep_the_most_expected_errors_in_the_batch(fashion_probs):
    probs, features, _ = fashion_probs
    expected = expected_wrong_decisions(probs, np.full(probs.shape[1], 0.3, dtype=np.float32))
    mixed = review_order(rank(probs, strategy="expected_errors_mixed", thresholds=0.3, batch_size=20, seed=1))
    # A quarter of the batch of 20 is random; the other 15 are the 15 largest expected error counts. Compared
    # as values: products the model scores alike tie (six Puma watches here), and the ranking breaks ties at
    # random (seeded), so which of the tied products are in the batch is not argsort's choice.
    largest = np.sort(expected)[::-1][:15]
    in_batch = np.sort(expected[mixed[:20]])[::-1][:15]
    np.testing.assert_allclose(in_batch, largest)
    batch = review_order(
        rank(
            probs, strategy="expected_errors_batch", thresholds=0.3, batch_size=20, features=features, seed=1
        )
    )
    assert expected[batch[:20]].mean() > expected.mean()
