"""The taxonomy the app hands the tagger at training time (issue 19): every active tag, with its parent
and aliases, also the tags no approved product carries yet."""

from __future__ import annotations

import pytest

from annotation.models import TagSource
from annotation.services.tags import tag_create, tag_merge
from annotation.services.training.data import _training_data, training_taxonomy
from tests.factories import ProductTagFactory, TagFactory, products_create

pytestmark = pytest.mark.django_db


def test_training_data_carries_every_active_tag_with_parents_and_aliases():
    apparel = tag_create(name="Apparel")
    skirts = tag_create(name="Skirts", parent=apparel)
    jeans = tag_create(name="Jeans", parent=apparel)  # no product carries it yet
    TagFactory(name="Sneakers", aliases=("Trainers",))
    retired = tag_create(name="Retired", parent=apparel)
    retired.is_active = False
    retired.save(update_fields=["is_active"])
    tee = tag_create(name="Tee")
    products = products_create(3)
    for product in products:
        ProductTagFactory(product=product, tag=apparel, source=TagSource.REVIEW)
        ProductTagFactory(product=product, tag=skirts, source=TagSource.REVIEW)
    tag_merge(source=tee, target=skirts)

    taxonomy = training_taxonomy()
    assert set(taxonomy.tags) == {"Apparel", "Skirts", "Jeans", "Sneakers"}
    assert taxonomy.parents == {"Skirts": "Apparel", "Jeans": "Apparel"}
    assert taxonomy.aliases == {"Sneakers": ("Trainers",), "Skirts": ("Tee",)}

    data = _training_data()
    assert data.taxonomy == taxonomy
    # The label map names the tags without examples too, so their scores can be stored as suggestions.
    assert data.tag_ids["Jeans"] == jeans.pk and "Retired" not in data.tag_ids
    assert {t for r in data.records for t in r.tags} == {"Apparel", "Skirts"}
