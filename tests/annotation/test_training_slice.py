"""The validation slice: the same rule in every run, so the active version is compared on unseen products."""

from __future__ import annotations

import pytest

from annotation.services.training import VALID_FRACTION, TrainingDataError, validation_ids
from mlcore.data import group_key
from mlcore.types import ProductRecord
from tests.annotation.training_support import demo_rows


def _records(rows: list[dict]) -> list[ProductRecord]:
    return [
        ProductRecord(id=row["id"], title=row["title"], tags=tuple(row.get("tags") or ())) for row in rows
    ]


def test_slice_is_stable_and_grows_with_the_data():
    records = _records(demo_rows(tagged=600))
    first = validation_ids(records[:400])
    assert set(validation_ids(list(reversed(records[:400])))) == set(first)  # order does not matter
    later = set(validation_ids(records))
    # A product held out once stays held out when more products are approved: the version trained on the
    # first 400 never saw any product of the later slice.
    assert set(first) <= later
    share = len(later) / len(records)
    assert VALID_FRACTION / 2 < share < VALID_FRACTION * 2


def test_title_groups_are_never_split():
    records = _records(demo_rows(tagged=600))
    held_out = set(validation_ids(records))
    sides: dict[str, set[bool]] = {}
    for record in records:
        sides.setdefault(group_key(record), set()).add(record.id in held_out)
    assert all(len(side) == 1 for side in sides.values())


def test_tiny_data_gets_one_product_on_each_side():
    records = _records(demo_rows(tagged=3))
    held_out = validation_ids(records)
    assert 1 <= len(held_out) < len(records)


def test_one_title_only_is_a_clear_error():
    records = [ProductRecord(id=str(i), title="Same Shirt", tags=("a",)) for i in range(4)]
    with pytest.raises(TrainingDataError, match="same title"):
        validation_ids(records)
