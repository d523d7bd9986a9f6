"""mlcore.simulate: how labels-to-target and the ratio are read off the curves, the catalog view (catalog
micro-F1, its target and ratio), and the CLI end to end on a tiny real pool (lexical / keyword tagger; no
Django)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from mlcore.records import read_jsonl
from mlcore.selection import DEFAULT_STRATEGY
from mlcore.simulate import (
    CurvePoint,
    SimulationConfig,
    catalog_f1,
    catalog_summary,
    labels_to_target,
    load_records,
    main,
    make_tagger,
    mean_curve,
    mean_f1_lead,
    read_csv,
    run_simulation,
    seed_rows,
    selected_tags,
    summarize,
    write_csv,
)
from tests.conftest import REPO_ROOT
from tests.mlcore.conftest import DATA


def _points(
    strategy: str, curves: dict[int, list[float]], start: int = 100, step: int = 100
) -> list[CurvePoint]:
    return [
        CurvePoint(strategy, seed, i, start + i * step, f1, 0.0, 0.0)
        for seed, values in curves.items()
        for i, f1 in enumerate(values)
    ]


def test_labels_to_target_is_the_first_count_reaching_it():
    assert labels_to_target([100, 200, 300], [0.5, 0.8, 0.9], 0.8) == 200
    assert labels_to_target([100, 200, 300], [0.5, 0.6, 0.7], 0.8) is None


def test_mean_curve_averages_the_seeds():
    labels, mean, low, high = mean_curve(_points("x", {0: [0.2, 0.6], 1: [0.4, 0.8]}), "x")
    assert labels == [100, 200]
    assert mean == pytest.approx([0.3, 0.7])
    assert low == [0.2, 0.6] and high == [0.4, 0.8]


def test_summary_ratio_both_reached():
    points = _points("dense_uncertain", {0: [0.5, 0.85, 0.9], 1: [0.5, 0.8, 0.9]}) + _points(
        "random", {0: [0.5, 0.6, 0.7, 0.8, 0.9], 1: [0.5, 0.6, 0.7, 0.9, 0.9]}
    )
    s = summarize(points, strategy="dense_uncertain", full_f1=0.8 / 0.95, target_share=0.95)
    assert s["target_f1"] == pytest.approx(0.8)
    assert s["labels_to_target"] == 200 and s["random_labels_to_target"] == 400
    assert s["ratio"] == 0.5 and s["ratio_is_upper_bound"] is False


def test_summary_ratio_when_random_never_reaches_is_an_upper_bound():
    points = _points("d", {0: [0.5, 0.9, 0.9]}) + _points("random", {0: [0.5, 0.6, 0.7]})
    s = summarize(points, strategy="d", full_f1=1.0, target_share=0.8)
    assert s["random_labels_to_target"] is None
    assert s["ratio"] == pytest.approx(200 / 300, abs=1e-4) and s["ratio_is_upper_bound"] is True


def test_summary_when_strategy_never_reaches_has_no_ratio():
    points = _points("d", {0: [0.5, 0.6]}) + _points("random", {0: [0.5, 0.9]})
    s = summarize(points, strategy="d", full_f1=1.0, target_share=0.8)
    assert s["labels_to_target"] is None and s["ratio"] is None
    assert s["random_labels_to_target"] == 200


def test_mean_f1_lead_averages_the_gap_after_the_seed_round():
    points = _points("d", {0: [0.5, 0.7, 0.9], 1: [0.5, 0.7, 0.7]}) + _points("random", {0: [0.5, 0.6, 0.7]})
    # Seed round (100 labels) is shared and left out; at 200: 0.7 - 0.6, at 300: 0.8 - 0.7.
    assert mean_f1_lead(points, "d") == pytest.approx(0.1)
    s = summarize(points, strategy="d", full_f1=1.0, target_share=0.8)
    assert s["mean_f1_lead"] == pytest.approx(0.1)
    assert mean_f1_lead(_points("d", {0: [0.5]}), "d") is None  # no random curve to compare with


def test_curves_csv_round_trips(tmp_path):
    points = _points("d", {0: [0.5, 0.71234], 2: [0.4, 0.6]})
    write_csv(tmp_path / "curves.csv", points)
    assert read_csv(tmp_path / "curves.csv") == points


def test_seed_sets_are_fixed_per_seed():
    assert list(seed_rows(1000, 50, 1)) == list(seed_rows(1000, 50, 1))
    assert set(seed_rows(1000, 50, 1)) != set(seed_rows(1000, 50, 2))


def test_bad_arguments_are_reported(tmp_path, capsys):
    assert main(["--pool", "p", "--test", "t", "--out", str(tmp_path), "--strategy", "nope"]) == 2
    assert "--strategy 'nope'" in capsys.readouterr().err
    assert main(["--pool", "p", "--test", "t", "--out", str(tmp_path), "--budget", "50"]) == 2
    with pytest.raises(FileNotFoundError, match="--pool: no such file"):
        main(["--pool", str(tmp_path / "missing.jsonl"), "--test", "t", "--out", str(tmp_path)])


# Samples in tests/data (see its README): English fashion titles, and Chinese reviews of 9 categories
# stored grouped by category (every other line goes to the pool so both sides see every category).
SAMPLES = {
    "en_fashion": (DATA / "mlcore_en_fashion.jsonl", slice(0, 160), slice(160, 240)),
    "zh_reviews": (DATA / "mlcore_selection_zh_reviews.jsonl", slice(0, 320, 2), slice(1, 160, 2)),
}


def _write_sample(path, source, rows: slice) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[rows]), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_cli_end_to_end_on_a_tiny_real_pool(tmp_path, name):
    pool, test, out = tmp_path / "pool.jsonl", tmp_path / "test.jsonl", tmp_path / "out"
    source, pool_rows, test_rows = SAMPLES[name]
    _write_sample(pool, source, pool_rows)
    _write_sample(test, source, test_rows)
    command = [
        sys.executable,
        "-m",
        "mlcore.simulate",
        "--pool",
        str(pool),
        "--test",
        str(test),
        "--strategy",
        "default",
        "--seed-size",
        "40",
        "--batch",
        "40",
        "--budget",
        "120",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--tagger",
        "lexical",
    ]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    for key in ("strategy", "labels_to_target", "random_labels_to_target", "ratio", "target_f1", "final_f1"):
        assert key in summary
    assert summary["catalog_curve"]["labels"] == [40, 80, 120]
    assert 0 < summary["catalog_target_f1"] <= 1
    assert summary["strategy"] == DEFAULT_STRATEGY
    assert 0 < summary["target_f1"] <= 1
    with open(out / "curves.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # 2 strategies x 2 seeds x rounds at 40, 80, 120 labels
    assert sorted({(r["strategy"], r["seed"]) for r in rows}) == sorted(
        [
            (DEFAULT_STRATEGY, "0"),
            (DEFAULT_STRATEGY, "1"),
            ("random", "0"),
            ("random", "1"),
        ]
    )
    assert sorted({int(r["labels"]) for r in rows}) == [40, 80, 120]
    assert all(0 <= float(r["micro_f1"]) <= 1 for r in rows)
    assert all(0 <= float(r["catalog_f1"]) <= 1 for r in rows)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["labels_to_target"] == summary["labels_to_target"]


# --------------------------------------------------------------------------------------------------
# The catalog view
# --------------------------------------------------------------------------------------------------


def _catalog_points(strategy: str, curves: dict[int, list[float]]) -> list[CurvePoint]:
    return [
        CurvePoint(strategy, seed, i, 100 + 100 * i, 0.5, 0.0, 0.0, value)
        for seed, values in curves.items()
        for i, value in enumerate(values)
    ]


def test_catalog_f1_is_gold_where_reviewed_and_the_model_elsewhere():
    pool = list(read_jsonl(DATA / "mlcore_en_fashion.jsonl"))[:20]
    everything = np.ones(len(pool), dtype=bool)
    assert catalog_f1(pool, everything, []) == 1.0
    nothing = np.zeros(len(pool), dtype=bool)
    assert catalog_f1(pool, nothing, [[] for _ in pool]) == 0.0
    # Half reviewed, the model tags nothing on the rest: recall is the reviewed half's share of gold tags.
    half = np.arange(len(pool)) < 10
    reviewed_tags = sum(len(r.tags) for r in pool[:10])
    recall = reviewed_tags / sum(len(r.tags) for r in pool)
    assert catalog_f1(pool, half, [[] for _ in range(10)]) == pytest.approx(2 * recall / (1 + recall))
    with pytest.raises(ValueError, match="tag lists"):
        catalog_f1(pool, half, [[]])


def test_catalog_summary_target_halves_the_seed_error_and_ratio_is_labels_over_random():
    points = _catalog_points(
        "expected_errors", {0: [0.6, 0.75, 0.85], 1: [0.64, 0.85, 0.9]}
    ) + _catalog_points("random", {0: [0.6, 0.66, 0.72, 0.78, 0.84], 1: [0.64, 0.7, 0.76, 0.82, 0.86]})
    summary = catalog_summary(points, strategy="expected_errors")
    # Seed catalog F1 0.62 (mean of the first round): target 1 - 0.38 / 2 = 0.81.
    assert summary["catalog_target_f1"] == pytest.approx(0.81)
    # Means 0.62, 0.80, 0.875: the strategy reaches 0.81 at 300 labels, random (0.80 at 400) at 500.
    assert summary["catalog_labels_to_target"] == 300
    assert summary["random_catalog_labels_to_target"] == 500
    assert summary["catalog_ratio"] == pytest.approx(300 / 500)
    curve = summary["catalog_curve"]
    assert curve["labels"] == [100, 200, 300, 400, 500]
    assert curve["expected_errors"][:3] == pytest.approx([0.62, 0.80, 0.875])
    assert curve["expected_errors"][3:] == [None, None]
    assert curve["random"] == pytest.approx([0.62, 0.68, 0.74, 0.80, 0.85])


def test_old_curves_without_a_catalog_column_still_read(tmp_path):
    path = tmp_path / "curves.csv"
    path.write_text("strategy,seed,round,labels,micro_f1,fit_s,rank_s\nrandom,0,0,100,0.5,1.0,0.0\n")
    (point,) = read_csv(path)
    assert point.micro_f1 == 0.5 and point.catalog_f1 is None
    assert catalog_summary([point], strategy="random")["catalog_target_f1"] is None


def test_catalog_fields_and_their_relations_in_process(tmp_path):
    """The keyword tagger (no training cost): every new field, the shared seed model, the gold end."""
    pool, test = tmp_path / "pool.jsonl", tmp_path / "test.jsonl"
    source = DATA / "mlcore_en_fashion.jsonl"
    _write_sample(pool, source, slice(0, 120))
    _write_sample(test, source, slice(160, 200))
    config = SimulationConfig(
        pool=pool,
        test=test,
        strategy="expected_errors",
        out=tmp_path / "out",
        seed_size=30,
        batch=30,
        budget=120,
        seeds=2,
        tagger="keyword",
    )
    summary = run_simulation(config, log=lambda message: None)
    for key in (
        "catalog_target_f1",
        "catalog_labels_to_target",
        "random_catalog_labels_to_target",
        "catalog_ratio",
        "catalog_curve",
    ):
        assert key in summary
    curve = summary["catalog_curve"]
    assert curve["labels"] == [30, 60, 90, 120]
    # At the seed both orders stand on the same seed model; with the whole pool reviewed the catalog is gold.
    assert curve["expected_errors"][0] == curve["random"][0] < 1.0
    assert curve["expected_errors"][-1] == curve["random"][-1] == 1.0
    assert summary["catalog_target_f1"] == pytest.approx(1 - (1 - curve["random"][0]) / 2, abs=1e-4)
    assert summary["catalog_ratio"] == pytest.approx(
        summary["catalog_labels_to_target"] / summary["random_catalog_labels_to_target"], abs=1e-4
    )
    # The seed round's catalog F1 is the seed model's: seed products gold, the rest its selected tags.
    records = load_records(pool, role="pool", keep_category_path=False)
    seed_catalog = []
    for seed in range(2):
        labelled = np.zeros(len(records), dtype=bool)
        labelled[seed_rows(len(records), 30, seed)] = True
        tagger = make_tagger("keyword").fit([records[i] for i in np.flatnonzero(labelled)])
        rest = [records[i] for i in np.flatnonzero(~labelled)]
        seed_catalog.append(catalog_f1(records, labelled, selected_tags(tagger, rest)))
    assert curve["random"][0] == pytest.approx(float(np.mean(seed_catalog)), abs=1e-4)
    rows = read_csv(tmp_path / "out" / "curves.csv")
    assert all(0 <= p.catalog_f1 <= 1 for p in rows)
