from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcore.autoapprove import OUT_OF_FOLD_SCORES_FILE, VALIDATION_SCORES_FILE
from mlcore.inference import load_model, predict, predict_proba
from mlcore.postprocess import PostProcessConfig
from mlcore.settings import RuntimeSettings
from mlcore.training import TrainConfig, train
from tests.mlcore.conftest import EN_FASHION, ZH_TITLES

REPO = Path(__file__).resolve().parents[2]


def test_train_config_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown tagger"):
        TrainConfig(tagger="nope")
    with pytest.raises(ValueError, match="valid_fraction"):
        TrainConfig(valid_fraction=0.0)
    bad = tmp_path / "c.json"
    bad.write_text('{"tagger": "lexical", "epochs": 3}')
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_json(bad)
    good = tmp_path / "g.json"
    good.write_text('{"tagger": "lexical", "tagger_config": {"C": 4}}')
    assert TrainConfig.from_json(good).tagger_config == {"C": 4}


def test_train_writes_a_complete_artifact_and_uses_given_valid_ids(en_fashion, tmp_path):
    valid_ids = [r.id for r in en_fashion[:30]]
    progress = []
    result = train(
        en_fashion,
        tmp_path / "model",
        TrainConfig(tagger="lexical"),
        valid_ids=valid_ids,
        progress=lambda phase, done, total: progress.append(phase),
    )
    out = Path(result.path)
    assert {"tagger.json", "training.json", "metrics.json", "lexical.pkl"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "training.json").read_text())
    assert set(meta["valid_ids"]) >= set(valid_ids)
    assert meta["data_fingerprint"] and meta["device"] in {"cpu", "cuda"} and meta["duration_s"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["micro_f1"] == pytest.approx(result.metrics["micro_f1"]) and metrics["micro_f1"] > 0.5
    assert "evaluate" in progress
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind
    assert not (out / OUT_OF_FOLD_SCORES_FILE).exists()  # the lexical tagger fits no fold models

    model = load_model(out)
    assert load_model(out) is model  # cached per process
    scored = predict(model, en_fashion[:5])
    assert len(scored) == 5 and all(row and row[0].score >= row[-1].score for row in scored)
    assert predict_proba(model, en_fashion[:5], batch_size=2).shape == (5, len(model.classes_))
    blocked = {s.tag for row in scored for s in row}
    filtered = predict(model, en_fashion[:5], postprocess=PostProcessConfig(blocked=blocked))
    assert all(row and not blocked & {s.tag for s in row} for row in filtered)
    assert predict(model, en_fashion[:5]) == scored  # the cached model kept its own settings


@pytest.mark.slow
def test_default_tagger_artifact_keeps_out_of_fold_scores_for_its_training_part(en_toys, tmp_path):
    """Held-out evidence for auto-approval: the validation slice scored by the saved tagger, and every
    product it trained on scored by the fold models that did not (disjoint, together all labelled)."""
    valid_ids = [r.id for r in en_toys[:40]]
    result = train(
        en_toys,
        tmp_path / "model",
        TrainConfig(tagger="default", tagger_config={"hidden": 64, "epochs": 8, "max_length": 32}),
        valid_ids=valid_ids,
        runtime=RuntimeSettings(cache_dir=tmp_path / "embeddings", device="cpu"),
    )
    out = Path(result.path)
    validation = json.loads((out / VALIDATION_SCORES_FILE).read_text())
    out_of_fold = json.loads((out / OUT_OF_FOLD_SCORES_FILE).read_text())
    assert {row["id"] for row in validation} == set(valid_ids)
    labelled = {r.id: r.tags for r in en_toys if r.tags}
    assert {row["id"] for row in out_of_fold} == set(labelled) - set(valid_ids)
    assert len(out_of_fold) == result.n_train
    for row in out_of_fold:
        assert row["tags"] == list(labelled[row["id"]]) and 0 < len(row["scores"]) <= 20
        assert all(isinstance(tag, str) and 0.0 <= score <= 1.0 for tag, score, _ in row["scores"])


def test_train_rejects_unlearnable_data(tmp_path, en_fashion):
    from dataclasses import replace

    with pytest.raises(ValueError, match="no labelled records"):
        train([replace(r, tags=()) for r in en_fashion[:10]], tmp_path / "m", TrainConfig(tagger="lexical"))
    with pytest.raises(ValueError, match="only one tag overall"):
        train(
            [replace(r, tags=("x",)) for r in en_fashion[:10]], tmp_path / "m", TrainConfig(tagger="lexical")
        )


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlcore", "--quiet", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_train_predict_evaluate(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"tagger": "keyword"}')
    run = _cli("train", "--train", str(ZH_TITLES), "--out", str(tmp_path / "m"), "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["valid_metrics"]["micro_f1"] > 0
    run = _cli(
        "predict",
        "--model",
        str(tmp_path / "m"),
        "--input",
        str(ZH_TITLES),
        "--output",
        str(tmp_path / "p.jsonl"),
    )
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 300
    first = rows[0]
    assert set(first) == {"id", "tags"} and 1 <= len(first["tags"]) <= 20
    assert set(first["tags"][0]) == {"tag", "score", "selected"}
    scores = [t["score"] for t in first["tags"]]
    assert scores == sorted(scores, reverse=True)
    assert any(t["selected"] for t in first["tags"])
    run = _cli("evaluate", "--model", str(tmp_path / "m"), "--input", str(ZH_TITLES), "--no-per-tag")
    assert run.returncode == 0, run.stderr
    assert {"micro_f1", "macro_f1", "samples_f1", "p@1", "p@5", "r@5", "ndcg@5"} <= set(
        json.loads(run.stdout)
    )


def test_cli_reports_a_malformed_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = EN_FASHION.read_text(encoding="utf-8").splitlines()[:5]
    lines.insert(3, '{"id": "x", "title": ')
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = _cli("train", "--train", str(bad), "--out", str(tmp_path / "m"))
    assert run.returncode == 2
    assert "line 4" in run.stderr and "malformed JSON" in run.stderr
