"""mlcore.autoapprove: Clopper-Pearson bounds and the score cuts, on constructed evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from mlcore.autoapprove import (
    approve_shortfall,
    clopper_pearson,
    exit_gate,
    find_approve_cut,
    find_cuts,
    find_reject_cut,
    min_pairs,
    precision_lower_bound,
    precision_upper_bound,
    product_decision,
)


def test_bounds_match_scipys_exact_binomial_interval():
    for k, n in [(1, 1), (7, 10), (95, 100), (300, 300), (0, 20)]:
        expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        lo, hi = clopper_pearson(k, n, 0.95)
        assert lo == pytest.approx(expected.low, abs=1e-9) and hi == pytest.approx(expected.high, abs=1e-9)
    # One-sided at 95% = the two-sided 90% interval's ends.
    ninety = binomtest(95, 100).proportion_ci(confidence_level=0.90, method="exact")
    assert precision_lower_bound(95, 100, 0.95) == pytest.approx(ninety.low, abs=1e-9)
    assert precision_upper_bound(95, 100, 0.95) == pytest.approx(ninety.high, abs=1e-9)


def test_no_evidence_bounds_are_uninformative_and_bad_counts_are_refused():
    assert precision_lower_bound(0, 0, 0.95) == 0.0
    assert precision_upper_bound(0, 0, 0.95) == 1.0
    with pytest.raises(ValueError, match="k <= n"):
        precision_lower_bound(5, 3, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        precision_lower_bound(1, 2, 1.0)


def test_min_pairs_is_the_smallest_perfect_record_that_clears_the_target():
    n = min_pairs(0.98, 0.95)
    assert n == math.ceil(math.log(0.05) / math.log(0.98)) == 149
    assert precision_lower_bound(n, n, 0.95) >= 0.98 > precision_lower_bound(n - 1, n - 1, 0.95)


def test_no_evidence_approves_nothing():
    assert find_approve_cut([], [], target=0.98, confidence=0.95) is None
    table = find_cuts([], target=0.98, confidence=0.95, min_tag_evidence=10)
    assert table.global_.approve is None and not table.approves("any", 0.999)
    decision = product_decision([("any", 0.999), ("other", 0.001)], table)
    assert decision.approved == () and not decision.confident


def test_too_little_evidence_approves_nothing_even_when_all_right():
    # 148 correct pairs cannot clear 0.98 at 95%: the sequence never starts.
    assert find_approve_cut([0.9] * 148, [True] * 148, target=0.98, confidence=0.95) is None
    assert find_approve_cut([0.9] * 149, [True] * 149, target=0.98, confidence=0.95).value == 0.9


def test_approve_cut_stops_at_the_first_failure_from_the_top():
    # 400 right pairs at 0.90-0.99, then 200 pairs at 0.50-0.89 of which half are wrong.
    rng = np.random.default_rng(0)
    high = rng.uniform(0.90, 0.99, 400)
    low = rng.uniform(0.50, 0.89, 200)
    scores = np.concatenate([high, low])
    outcomes = np.concatenate([np.ones(400, bool), rng.random(200) < 0.5])
    cut = find_approve_cut(scores, outcomes, target=0.98, confidence=0.95)
    assert cut is not None
    above = scores >= cut.value
    assert cut.n == above.sum() and cut.k == outcomes[above].sum()
    assert cut.lower >= 0.98
    assert 0.85 < cut.value <= high.min()  # at most a few of the noisy pairs get in


def test_one_wrong_pair_at_the_top_does_not_end_every_sequence():
    # The highest-scoring pair is wrong, 1,000 right ones follow: the first sequence (149 pairs: 148/149)
    # fails at once, the one starting at 4x as many pairs accepts a cut.
    scores = [0.99] + [0.9 - i * 1e-4 for i in range(1000)]
    outcomes = [False] + [True] * 1000
    cut = find_approve_cut(scores, outcomes, target=0.98, confidence=0.95)
    assert cut is not None and cut.n == 1001 and cut.k == 1000 and cut.lower >= 0.98
    # The split level is stricter than the plain one.
    assert cut.lower < precision_lower_bound(1000, 1001, 0.95)


def test_every_sequence_start_depends_on_counts_only():
    from mlcore.autoapprove import _starts

    starts, level = _starts(100, 0.98, 0.95)
    assert starts == [] and level == 0.95
    starts, level = _starts(10_000, 0.98, 0.95)
    assert len(starts) <= round((1 - 0.95) / (1 - level)) and starts[0] == min_pairs(0.98, level)
    assert all(b == 4 * a for a, b in zip(starts, starts[1:])) and starts[-1] <= 10_000


def test_ties_decide_together():
    scores = [0.9] * 200 + [0.8] * 10
    outcomes = [True] * 200 + [False] * 10
    assert find_approve_cut(scores, outcomes, target=0.98, confidence=0.95).value == 0.9
    # All 210 at one score: 200/210 = 0.952 cannot pass, and no cut can split them.
    assert find_approve_cut([0.9] * 210, outcomes, target=0.98, confidence=0.95) is None


def test_reject_cut_mirrors_the_approve_cut():
    scores = [0.01] * 300 + [0.5] * 50
    outcomes = [False] * 300 + [True] * 25 + [False] * 25
    cut = find_reject_cut(scores, outcomes, target=0.98, confidence=0.95)
    assert cut.value == 0.01 and cut.n == 300 and cut.k == 300
    assert find_reject_cut([0.2] * 300, [True] * 300, target=0.98, confidence=0.95) is None


def test_bad_scores_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="within"):
        find_approve_cut([1.5], [True], target=0.98, confidence=0.95)
    with pytest.raises(ValueError, match="outcomes"):
        find_approve_cut([0.5, 0.6], [True], target=0.98, confidence=0.95)
    with pytest.raises(ValueError, match="min_tag_evidence"):
        find_cuts([], target=0.98, confidence=0.95, min_tag_evidence=0)


def test_per_tag_cuts_where_evidence_allows_else_global():
    pairs = []
    # "shoes": 500 pairs of its own, perfect above 0.7, useless below.
    pairs += [("shoes", 0.7 + 0.29 * i / 300, True) for i in range(300)]
    pairs += [("shoes", 0.1 + 0.5 * i / 200, i % 2 == 0) for i in range(200)]
    # "bad": 300 pairs of its own, wrong half the time at every score: no cut at all.
    pairs += [("bad", 0.99, i % 2 == 0) for i in range(300)]
    # Ten rare tags, 20 pairs each, perfect at 0.95, clean negatives at 0.02: pooled to a global cut.
    for t in range(10):
        pairs += [(f"rare{t}", 0.95, True)] * 20 + [(f"rare{t}", 0.02, False)] * 20
    table = find_cuts(pairs, target=0.98, confidence=0.95, min_tag_evidence=250)
    assert set(table.per_tag) == {"shoes", "bad"}
    shoes = table.per_tag["shoes"].approve
    # All 300 clean pairs are in, plus the few noisy ones the 2% error allowance can absorb, no more.
    assert 0.55 < shoes.value <= 0.7 and shoes.n >= 300 and shoes.lower >= 0.98
    assert shoes.n - shoes.k <= 3
    assert table.per_tag["bad"].approve is None
    assert not table.approves("bad", 0.999)  # a tag with its own evidence never borrows the global cut
    assert table.global_.approve.value == 0.95 and table.global_.pairs == 400
    assert table.approves("rare3", 0.96) and table.approves("never-seen", 0.97)
    assert table.rejects("rare3", 0.02) and not table.rejects("rare3", 0.5)

    sure = product_decision([("rare1", 0.97), ("rare2", 0.01)], table)
    assert sure.approved == ("rare1",) and sure.confident
    unsure = product_decision([("rare1", 0.97), ("rare2", 0.5)], table)
    assert unsure.approved == ("rare1",) and not unsure.confident
    nothing = product_decision([("rare2", 0.01)], table)
    assert nothing.approved == () and not nothing.confident  # leaving the queue needs an approval


def test_exit_gate_counts_products_exactly_right_among_those_that_would_leave():
    pairs = [("a", 0.95, True)] * 200 + [("b", 0.02, False)] * 200
    table = find_cuts(pairs, target=0.9, confidence=0.9, min_tag_evidence=10_000)
    complete = [([("a", 0.95), ("b", 0.02)], {"a"})] * 30
    assert exit_gate(complete, table).passes  # 30 of 30: lower bound 0.926 at 90%
    missing = [([("a", 0.95), ("b", 0.02)], {"a", "c"})] * 5  # "c" never stored: wrong products
    unsure = [([("a", 0.95), ("b", 0.5)], {"a"})] * 50  # not leaving: not counted
    gate = exit_gate(complete + missing + unsure, table)
    assert (gate.n, gate.k) == (35, 30) and not gate.passes
    assert not exit_gate([], table).passes  # no evidence: nobody leaves


def test_a_tag_gets_its_own_cut_from_its_likely_pairs_not_from_every_stored_one():
    """A product stores its top 20 suggestions, so a tag of a small taxonomy sits on nearly every product,
    mostly at low scores. Those pairs cannot make an approve cut: counting them would give the tag its own
    cut, which its few likely pairs never pass, instead of the global one."""
    pairs = []
    for t in range(8):  # 30 right pairs at 0.97 each, 400 stored pairs at 0.05 that are wrong
        pairs += [(f"colour{t}", 0.97, True)] * 30 + [(f"colour{t}", 0.05, False)] * 400
    table = find_cuts(pairs, target=0.98, confidence=0.95, min_tag_evidence=200)
    assert table.per_tag == {} and table.global_.approve.value == 0.97
    assert table.approves("colour3", 0.97) and table.rejects("colour3", 0.05)
    # Scores alone decide it: 200 likely pairs give a tag its own cut, right or wrong.
    own = pairs + [("shoes", 0.9, i % 2 == 0) for i in range(200)]
    table = find_cuts(own, target=0.98, confidence=0.95, min_tag_evidence=200)
    assert set(table.per_tag) == {"shoes"} and table.per_tag["shoes"].approve is None
    assert not table.approves("shoes", 0.99) and table.approves("colour0", 0.98)


def test_shortfall_says_how_much_evidence_a_cut_lacks():
    # 100 perfect pairs: at 0.98 / 95% a cut needs 149, so none can be tested.
    short = approve_shortfall([0.99] * 100, [True] * 100, target=0.98, confidence=0.95)
    assert (short.pairs, short.needed, short.value, short.n, short.k) == (
        100,
        min_pairs(0.98, 0.95),
        None,
        100,
        100,
    )
    assert short.lower == 0.0


def test_shortfall_reports_the_closest_cut_with_its_errors():
    # 400 pairs, every tenth wrong: precision 0.9 at every cut, never near 0.98.
    scores = [1.0 - i / 1000 for i in range(400)]
    outcomes = [i % 10 != 5 for i in range(400)]
    assert find_approve_cut(scores, outcomes, target=0.98, confidence=0.95) is None
    short = approve_shortfall(scores, outcomes, target=0.98, confidence=0.95)
    assert short.pairs == 400 and short.value is not None and short.n >= short.needed
    assert short.k == sum(outcomes[: short.n]) and short.value == scores[short.n - 1]
    assert short.lower == pytest.approx(precision_lower_bound(short.k, short.n, 0.95))
    assert short.lower < 0.98
    # The best lower bound over the cuts a sequence could test (one sequence here: level 0.95).
    best = max(precision_lower_bound(sum(outcomes[:n]), n, 0.95) for n in range(short.needed, 401))
    assert short.lower == pytest.approx(best)


def test_find_cuts_explains_a_global_pool_without_a_cut_and_only_then():
    noisy = [("a", 0.99, i % 20 != 0) for i in range(300)]
    table = find_cuts(noisy, target=0.98, confidence=0.95, min_tag_evidence=10_000)
    assert table.global_.approve is None
    assert table.global_.shortfall.n - table.global_.shortfall.k >= 1
    assert table.global_.as_dict()["shortfall"]["pairs"] == 300
    clean = [("a", 0.99, True)] * 300
    table = find_cuts(clean, target=0.98, confidence=0.95, min_tag_evidence=10_000)
    assert table.global_.approve is not None and table.global_.shortfall is None
