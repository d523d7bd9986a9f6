from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from mlcore.embeddings import EmbeddingCache
from mlcore.metrics import evaluate_tag_sets
from mlcore.postprocess import PostProcessConfig
from mlcore.tagger import available_taggers, get_tagger, load_tagger
from mlcore.tagger.hybrid import embedding_text
from mlcore.tagger.mentions import tag_surface
from mlcore.types import ProductRecord


def _split(records, n_test=60):
    return records[:-n_test], records[-n_test:]


def _micro_f1(tagger, records):
    out = tagger.suggest(records)
    return evaluate_tag_sets([r.tags for r in records], [[s.tag for s in row if s.selected] for row in out])[
        "micro_f1"
    ]


def test_registry():
    assert {"default", "lexical", "keyword", "dummy"} <= set(available_taggers())
    with pytest.raises(ValueError, match="unknown tagger 'nope'"):
        get_tagger("nope")
    with pytest.raises(ValueError, match="unknown config"):
        get_tagger("default", colour="red")


def test_keyword_tagger_on_chinese_titles_is_deterministic(zh_titles, tmp_path):
    train, test = _split(zh_titles)
    tagger = get_tagger("keyword").fit(train)
    assert tagger.classes_ == sorted({t for r in train for t in r.tags})
    f1 = _micro_f1(tagger, test)
    assert f1 > 0.3  # entity tags are substrings of the titles
    tagger.save(tmp_path / "kw")
    again = load_tagger(tmp_path / "kw")
    assert again.suggest(test) == tagger.suggest(test)


def test_lexical_tagger_learns_english_and_round_trips(en_fashion, tmp_path):
    train, test = _split(en_fashion)
    tagger = get_tagger("lexical").fit(train)
    proba = tagger.predict_proba(test)
    assert proba.shape == (len(test), len(tagger.classes_)) and proba.dtype == np.float32
    assert _micro_f1(tagger, test) > 0.6
    tagger.save(tmp_path / "lex")
    again = load_tagger(tmp_path / "lex")
    assert np.array_equal(again.predict_proba(test), proba)
    assert again.suggest(test) == tagger.suggest(test)


def test_lexical_tagger_on_chinese(zh_titles):
    train, test = _split(zh_titles)
    tagger = get_tagger("lexical").fit(train)
    assert _micro_f1(tagger, test) > 0.12  # 240 titles for ~400 tags: far above chance (~0)


def test_bad_training_input_gives_clear_errors():
    tagger = get_tagger("lexical")
    with pytest.raises(ValueError, match="no labelled records"):
        tagger.fit([ProductRecord(id="1", title="a mug")])
    with pytest.raises(ValueError, match="only one tag overall"):
        tagger.fit([ProductRecord(id=str(i), title=f"mug {i}", tags=("mug",)) for i in range(30)])


def test_documented_behaviour_for_odd_products(en_fashion):
    # A tag with a single example is kept as a class; empty text and an unknown language still get
    # a ranked list with at least one selected tag (min_selected=1).
    train = list(en_fashion[:150])
    train.append(ProductRecord(id="one-off", title="Wooden Abacus Toy", tags=("toys", "gender:unisex")))
    tagger = get_tagger("lexical").fit(train)
    assert "toys" in tagger.classes_
    odd = [
        ProductRecord(id="empty", title=" "),
        ProductRecord(id="thai", title="เสื้อยืดสีแดง", lang="th"),
        ProductRecord(id="digits", title="12345"),
    ]
    for row in tagger.suggest(odd):
        assert 1 <= len(row) <= 20
        assert sum(s.selected for s in row) >= 1


def test_postprocess_settings_apply_at_predict_time(en_fashion):
    tagger = get_tagger("keyword").fit(en_fashion)
    record = [replace(en_fashion[0], id="x")]
    top = tagger.suggest(record)[0][0].tag
    tagger.postprocess = PostProcessConfig(blocked={top})
    assert top not in {s.tag for s in tagger.suggest(record)[0]}


@pytest.mark.slow
def test_default_tagger_tiny_real_training_and_round_trip(en_toys, runtime, cache_dir, tmp_path):
    train, test = _split(en_toys)
    tagger = get_tagger("default", hidden=64, epochs=8, max_length=32, runtime=runtime)
    tagger.fit(train)
    assert tagger.info_["head_epochs"] >= 1
    # The cache the caller named is the one used (one embedding per distinct text: the products' and the
    # tag names' the tagger scores with), nothing else.
    cached = EmbeddingCache(cache_dir).count(tagger.encoder.fingerprint)
    names = {tag_surface(t) for t in tagger.classes_}
    assert cached == len({embedding_text(r) for r in train if r.tags} | names)
    assert tagger.fine_tune_ is False and tagger.config.fine_tune is None  # decided at fit, not rewritten
    proba = tagger.predict_proba(test)
    assert proba.shape == (len(test), len(tagger.classes_))
    assert _micro_f1(tagger, test) > 0.3
    tagger.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "tagger.json").read_text())
    assert saved["config"]["fine_tune"] is None and saved["fitted"] == {"fine_tune_": False}
    assert "cache_dir" not in saved["config"] and "device" not in saved["config"]
    again = load_tagger(tmp_path / "model", runtime=runtime)
    assert np.array_equal(again.predict_proba(test), proba)
    assert again.suggest(test) == tagger.suggest(test)
    assert EmbeddingCache(cache_dir).count(tagger.encoder.fingerprint) == cached + len(
        {embedding_text(r) for r in test} - {embedding_text(r) for r in train if r.tags} - names
    )
    # The same model as the format-1 writer left it: fit's decision inside the config, runtime keys too.
    old = tmp_path / "model-format1"
    shutil.copytree(tmp_path / "model", old)
    meta = {
        **saved,
        "format": 1,
        "config": {**saved["config"], "fine_tune": False, "cache_dir": None, "device": None},
    }
    del meta["fitted"]
    (old / "tagger.json").write_text(json.dumps(meta))
    from_old = load_tagger(old, runtime=runtime)
    assert from_old.fine_tune_ is False and from_old.config == tagger.config.__class__(
        **{**saved["config"], "fine_tune": False}
    )
    assert np.array_equal(from_old.predict_proba(test), proba)


@pytest.mark.slow
def test_default_tagger_fine_tune_option_runs_on_cpu(en_fashion, runtime, tmp_path):
    # The GPU path (full fine-tuning, bf16 autocast on CUDA) exercised on a CPU with a tiny budget.
    records = en_fashion[:80]
    tagger = get_tagger(
        "default", fine_tune=True, fine_tune_epochs=1, max_length=16, hidden=32, runtime=runtime
    )
    tagger.fit(records)
    assert (tagger.parts_.head.model.config.problem_type) == "multi_label_classification"
    # The device the tagger picked (what CUDA would be on a GPU machine) is where the weights trained, and
    # the fine-tuned tagger validates on a held-out slice as on a GPU (no cross-fitting of 3 fine-tunes).
    assert tagger.parts_.head.device == tagger._device()
    assert next(tagger.parts_.head.model.parameters()).device.type == tagger._device().type
    assert tagger.info_["cross_fitted"] is False
    proba = tagger.predict_proba(records[:10])
    tagger.save(tmp_path / "ft")
    assert (tmp_path / "ft" / "encoder" / "config.json").is_file()
    again = load_tagger(tmp_path / "ft", runtime=runtime)
    assert again.fine_tune_ is True
    assert np.allclose(again.predict_proba(records[:10]), proba, atol=1e-5)


def test_fine_tune_autocast_is_the_only_device_branch():
    # Training and prediction run the same code on every device; the autocast context is the one place
    # that differs: bf16 on CUDA, disabled on the CPU (so the CPU test runs the CUDA path in float32).
    import warnings

    import torch

    from mlcore.tagger.finetune import FineTunedClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on a CPU-only machine
        cuda = FineTunedClassifier(None, None, max_length=8, device=torch.device("cuda"))._autocast()
    assert cuda.device == "cuda" and cuda.fast_dtype == torch.bfloat16
    cpu = FineTunedClassifier(None, None, max_length=8, device=torch.device("cpu"))._autocast()
    assert cpu.device == "cpu" and cpu._enabled is False


def _top1_precision(rows, gold_of) -> float:
    hits = [row[0].tag in gold_of[pid] for pid, row in rows if row]
    return sum(hits) / len(hits)


@pytest.mark.slow
def test_default_tagger_scores_its_own_products_out_of_fold(en_toys, runtime, tmp_path):
    """The cross-fitted fold models score every training product the saved tagger learnt from; the saved
    tagger on those same products has seen their tags (and is surer of them), a new product it has not."""
    train, test = _split(en_toys, n_test=100)
    tagger = get_tagger("default", hidden=64, epochs=8, max_length=32, runtime=runtime).fit(train)
    oof = tagger.out_of_fold_suggestions(top_k=20)
    labelled = [r for r in train if r.tags]
    assert [pid for pid, _ in oof] == [r.id for r in labelled]
    for _, row in oof:
        scores = [s.score for s in row]
        assert 0 < len(row) <= 20 and scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores) and any(s.selected for s in row)  # min_selected 1
    gold_of = {r.id: set(r.tags) for r in labelled + test}
    in_sample = list(zip([r.id for r in labelled], tagger.suggest(labelled), strict=True))
    unseen = list(zip([r.id for r in test], tagger.suggest(test), strict=True))
    own, out_of_fold, new = (_top1_precision(rows, gold_of) for rows in (in_sample, oof, unseen))
    assert own > out_of_fold and abs(out_of_fold - new) < own - new
    # Kept in memory only: a saved and loaded tagger has no fold models, so no such scores.
    tagger.save(tmp_path / "model")
    assert load_tagger(tmp_path / "model", runtime=runtime).out_of_fold_suggestions() == []
    assert get_tagger("lexical").fit(train).out_of_fold_suggestions() == []
