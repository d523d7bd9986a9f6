"""Fixtures for the mlcore tests: small real samples cut from shared/data (tests/data/mlcore_*.jsonl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcore.records import read_jsonl
from mlcore.settings import RuntimeSettings
from mlcore.types import ProductRecord

DATA = Path(__file__).resolve().parent.parent / "data"
EN_TOYS = DATA / "mlcore_en_toys.jsonl"  # amazon_uk_toys: category-path tags
EN_FASHION = DATA / "mlcore_en_fashion.jsonl"  # myntra_fashion_attrs: path + attribute tags
ZH_TITLES = DATA / "mlcore_zh_titles.jsonl"  # zh_ecommerce_ner_acl19: Chinese titles, entity tags


def _load(path: Path, hide_category: bool = True) -> list[ProductRecord]:
    from dataclasses import replace

    # The tags of these sets are (lower-cased) category nodes: hide the path, as the benchmark does.
    return [replace(r, category_path=None) if hide_category else r for r in read_jsonl(path)]


@pytest.fixture(scope="session")
def en_toys() -> list[ProductRecord]:
    return _load(EN_TOYS)


@pytest.fixture(scope="session")
def en_fashion() -> list[ProductRecord]:
    return _load(EN_FASHION)


@pytest.fixture(scope="session")
def zh_titles() -> list[ProductRecord]:
    return _load(ZH_TITLES)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "embeddings"


@pytest.fixture
def runtime(cache_dir: Path) -> RuntimeSettings:
    """Runtime settings with a fresh embedding cache, passed explicitly like the app and the CLI do."""
    return RuntimeSettings(cache_dir=cache_dir, device="cpu")
