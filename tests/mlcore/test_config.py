"""Typed tagger configs (unknown keys and bad values are named errors, fit never rewrites them), the
runtime settings passed explicitly instead of read from the environment, and artifacts of the earlier
tagger.json format still loading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mlcore.cli import runtime_from_env
from mlcore.device import cpu_threads
from mlcore.embeddings import base_model_setting
from mlcore.inference import load_model
from mlcore.settings import RuntimeSettings
from mlcore.tagger import get_tagger, load_tagger, tagger_config_class
from mlcore.tagger.config import HybridConfig, KeywordConfig, LexicalConfig
from mlcore.training import TrainConfig


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="unknown config key for HybridConfig: 'colour'"):
        HybridConfig.from_dict({"colour": "red", "hidden": 64})
    with pytest.raises(ValueError, match="'colour'"):
        get_tagger("default", colour="red")
    with pytest.raises(ValueError, match="unknown config keys for LexicalConfig: 'epochs', 'hidden'"):
        TrainConfig(tagger="lexical", tagger_config={"epochs": 3, "hidden": 8})  # before any training
    with pytest.raises(ValueError, match="unknown config key for KeywordConfig: 'C'"):
        get_tagger("dummy", {"C": 2})
    with pytest.raises(ValueError, match="cache_dir: not a HybridConfig key but a runtime setting"):
        get_tagger("default", cache_dir="/tmp/x")


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="HybridConfig.hidden must be an int >= 1, got 0"):
        HybridConfig(hidden=0)
    with pytest.raises(ValueError, match="HybridConfig.fine_tune must be true, false or None"):
        HybridConfig(fine_tune="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="KeywordConfig.threshold must be in"):
        KeywordConfig(threshold=1.5)
    with pytest.raises(ValueError, match="LexicalConfig.C must be a number"):
        LexicalConfig.from_dict({"C": "strong"})
    assert LexicalConfig.from_dict({"C": 4}).C == 4.0 and isinstance(LexicalConfig(C=4).C, float)
    with pytest.raises(ValueError, match="num_threads"):
        RuntimeSettings(num_threads=0)


def test_configs_are_frozen_and_fit_does_not_rewrite_them(en_fashion):
    tagger = get_tagger("lexical", C=4)
    assert tagger.config == LexicalConfig(C=4.0) and tagger_config_class("lexical") is LexicalConfig
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagger.config.C = 1.0  # type: ignore[misc]
    before = tagger.config
    tagger.fit(en_fashion)
    assert tagger.config == before and tagger.get_params() == {"C": 4.0, "valid_fraction": 0.15, "seed": 13}
    assert tagger.set_params(C=2).config.C == 2.0 and before.C == 4.0
    with pytest.raises(TypeError, match="takes a HybridConfig"):
        get_tagger("default", LexicalConfig())
    assert get_tagger("default", HybridConfig(hidden=8), epochs=2).config == HybridConfig(hidden=8, epochs=2)


def test_runtime_settings_are_what_the_tagger_uses(tmp_path, monkeypatch):
    encoder_dir = tmp_path / "encoder"
    encoder_dir.mkdir()
    (encoder_dir / "config.json").write_text("{}")
    # Environment variables the library used to read: set to nonsense, they must change nothing.
    monkeypatch.setenv("TAGSTUDIO_CACHE_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("TAGSTUDIO_BASE_MODEL", str(tmp_path / "from-env-model"))
    monkeypatch.setenv("TAGSTUDIO_DEVICE", "cuda:7")
    monkeypatch.setenv("TAGSTUDIO_NUM_THREADS", "97")

    runtime = RuntimeSettings(cache_dir=tmp_path / "cache", base_model=str(encoder_dir), device="cpu")
    tagger = get_tagger("default", runtime=runtime)
    assert tagger._cache().directory == tmp_path / "cache"
    assert (tmp_path / "cache" / "embeddings.sqlite").is_file() and not (tmp_path / "from-env").exists()
    assert tagger.encoder.name == str(encoder_dir) and tagger.encoder.device_name == "cpu"
    assert get_tagger("default", base_model="other/model", runtime=runtime).encoder.name == "other/model"
    assert get_tagger("default", runtime=RuntimeSettings(cache_dir="none"))._cache() is None

    defaults = RuntimeSettings()
    assert defaults.embedding_cache_dir() == Path("~/.cache/tagstudio/embeddings").expanduser()
    assert base_model_setting(defaults.base_model).endswith("model")  # the packaged MiniLM, not the env's
    assert cpu_threads(3) == 3 and cpu_threads() != 97


def test_cli_reads_the_environment_at_its_boundary():
    env = {
        "TAGSTUDIO_CACHE_DIR": "/c",
        "TAGSTUDIO_BASE_MODEL": "/m",
        "TAGSTUDIO_DEVICE": "cpu",
        "TAGSTUDIO_NUM_THREADS": "2",
    }
    assert runtime_from_env(env) == RuntimeSettings(
        cache_dir="/c", base_model="/m", device="cpu", num_threads=2
    )
    assert runtime_from_env(env, cache_dir="/flag").cache_dir == "/flag"  # --cache-dir wins
    assert runtime_from_env({}) == RuntimeSettings()
    assert runtime_from_env({"HF_HUB_OFFLINE": "0"}).local_files_only is False
    with pytest.raises(ValueError, match="TAGSTUDIO_NUM_THREADS"):
        runtime_from_env({"TAGSTUDIO_NUM_THREADS": "many"})


def _format1_keyword_artifact(directory: Path) -> None:
    """A keyword-tagger artifact exactly as the format-1 writer left it (config rewritten in place)."""
    directory.mkdir()
    meta = {
        "tagger": "keyword",
        "format": 1,
        "config": {"threshold": 0.4},
        "classes": ["dress", "shirt"],
        "thresholds": [0.4, 0.4],
        "default_threshold": 0.4,
        "postprocess": {
            "aliases": {},
            "parents": {},
            "blocked": [],
            "close_hierarchy": True,
            "max_selected": None,
            "min_selected": 1,
        },
        "info": {},
    }
    (directory / "tagger.json").write_text(json.dumps(meta))
    np.savez(
        directory / "keyword.npz", precision=np.array([0.9, 0.8], np.float32), prior=np.array([0.5, 0.5])
    )


def test_artifact_of_the_earlier_format_loads(tmp_path):
    from mlcore.types import ProductRecord

    _format1_keyword_artifact(tmp_path / "old")
    tagger = load_tagger(tmp_path / "old")
    assert tagger.config == KeywordConfig(threshold=0.4)
    scored = tagger.suggest([ProductRecord(id="1", title="blue shirt")])[0]
    assert scored[0].tag == "shirt" and scored[0].selected and scored[0].score == pytest.approx(0.8)
    # Saved again, it is written in the current format and still loads to the same suggestions.
    tagger.save(tmp_path / "new")
    meta = json.loads((tmp_path / "new" / "tagger.json").read_text())
    assert meta["format"] == 2 and meta["fitted"] == {} and meta["config"] == {"threshold": 0.4}
    assert load_tagger(tmp_path / "new").suggest([ProductRecord(id="1", title="blue shirt")])[0] == scored


def test_load_model_runs_with_the_runtime_it_is_given(tmp_path):
    _format1_keyword_artifact(tmp_path / "m")
    one = RuntimeSettings(cache_dir=tmp_path / "a")
    model = load_model(tmp_path / "m", runtime=one)
    assert model.runtime == one and load_model(tmp_path / "m", runtime=one) is model
    other = load_model(tmp_path / "m", runtime=RuntimeSettings(cache_dir=tmp_path / "b"))
    assert other is not model and other.runtime.cache_dir == tmp_path / "b"
