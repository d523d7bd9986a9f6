"""The demo catalog `make run` loads: a card with material (description, brand), no answers in the
untagged pool, and a taxonomy whose parents never add a tag the catalog's own products contradict."""

from __future__ import annotations

import csv
import json

from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "annotation" / "fixtures"


def _rows() -> list[dict]:
    with open(FIXTURES / "demo_catalog.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _parents() -> dict[str, str]:
    with open(FIXTURES / "demo_taxonomy.csv", encoding="utf-8", newline="") as fh:
        return {row["name"]: row["parent"] for row in csv.DictReader(fh)}


def test_every_product_has_a_description_and_a_brand_and_no_category_path():
    rows = _rows()
    assert len(rows) == 3000 and len({r["id"] for r in rows}) == 3000
    assert all(r["title"] and r["description"] and r["brand"] for r in rows)
    # The path's nodes are the tags: an untagged product must not carry them.
    assert not any("category_path" in r for r in rows)
    assert sum(1 for r in rows if r.get("tags")) == 1200


def test_the_taxonomy_names_every_tag_and_its_parents_hold_for_every_tagged_product():
    parents = _parents()
    tagged = [r for r in _rows() if r.get("tags")]
    assert {t for r in tagged for t in r["tags"]} <= set(parents)
    assert set(parents.values()) - {""} <= set(parents)
    for row in tagged:
        for tag in row["tags"]:
            # Hierarchy closure adds a tag's ancestors on accept: each must already be the product's.
            node = parents[tag]
            while node:
                assert node in row["tags"], (row["id"], tag, node)
                node = parents[node]
