"""Review-queue priorities: cold-start diversity without a model, active learning over stored scores."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.models import ModelVersion, Product, ReviewStatus, Suggestion
from annotation.services import queue as queue_module
from annotation.services.queue import queue_priorities_recompute, queue_strategy, queue_strategy_set
from annotation.taxonomy.resolver import TagResolver
from mlcore.selection import DEFAULT_STRATEGY, rank
from tests.annotation.training_support import catalog_load, demo_rows, memory_broker
from tests.factories import ModelVersionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_memory_broker")]


def _queue_order() -> list[int]:
    return list(
        Product.objects.filter(review_status=ReviewStatus.UNREVIEWED)
        .order_by("-priority", "id")
        .values_list("id", flat=True)
    )


@pytest.mark.slow
def test_cold_start_orders_by_text_diversity_not_by_id():
    rows = demo_rows(tagged=0, untagged=400)
    catalog_load(rows)
    summary = queue_priorities_recompute()
    assert summary["strategy"] == "cold_start" and summary["ranked"] == 400
    priorities = list(Product.objects.values_list("priority", flat=True))
    assert len(set(priorities)) == 400 and min(priorities) > 0 and max(priorities) <= 1
    order = _queue_order()
    by_id = sorted(order)
    assert order[:20] != by_id[:20]
    # Coverage: the head of the queue spans more kinds of product (last title word: "Tshirts", "Dresses",
    # ...) than the same number of products taken in id order.
    kind = {p.id: p.title.split()[-1].lower() for p in Product.objects.all()}
    assert len({kind[i] for i in order[:20]}) > len({kind[i] for i in by_id[:20]})


def test_reviewed_products_are_not_ranked():
    products = catalog_load(demo_rows(tagged=0, untagged=30))
    Product.objects.filter(id=products[0].id).update(review_status=ReviewStatus.REVIEWED, priority=-5.0)
    queue_priorities_recompute()
    assert Product.objects.get(id=products[0].id).priority == -5.0


def _active_version_with_scores(products, scores_by_product: dict[int, dict[str, float]]) -> ModelVersion:
    names = sorted({name for scores in scores_by_product.values() for name in scores})
    tag_ids, _ = TagResolver().resolve(names, create=True)
    version = ModelVersionFactory(version="v-scores", config={"tag_ids": {n: tag_ids[n] for n in names}})
    ModelVersion.objects.filter(id=version.id).update(is_active=True)
    Suggestion.objects.bulk_create(
        [
            Suggestion(product_id=pid, tag_id=tag_ids[name], model_version=version, score=score)
            for pid, scores in scores_by_product.items()
            for name, score in scores.items()
        ]
    )
    Product.objects.filter(id__in=list(scores_by_product)).update(
        suggested_by=version, needs_suggestion=False
    )
    return version


@pytest.mark.parametrize("strategy", ["binary_uncertainty", "binary_entropy", "threshold_uncertainty"])
def test_uncertain_products_come_first(strategy):
    products = catalog_load(demo_rows(tagged=0, untagged=60))
    rng = np.random.default_rng(3)
    scores = {}
    for i, product in enumerate(products[:50]):
        # Ten products sit on the fence (0.45-0.55), the others are sure (near 0 or 1).
        if i % 5 == 0:
            scores[product.id] = {
                "red": float(rng.uniform(0.45, 0.55)),
                "blue": float(rng.uniform(0.45, 0.55)),
            }
        else:
            scores[product.id] = {
                "red": float(rng.uniform(0.95, 0.99)),
                "blue": float(rng.uniform(0.01, 0.05)),
            }
    _active_version_with_scores(products, scores)
    queue_strategy_set(strategy=strategy)
    assert queue_strategy() == strategy
    summary = queue_priorities_recompute()
    assert summary["strategy"] == strategy and summary["ranked"] == 50
    fence = {p.id for i, p in enumerate(products[:50]) if i % 5 == 0}
    assert set(_queue_order()[:10]) == fence
    # Products without the active version's suggestions (still being scored) go last.
    unscored = {p.id for p in products[50:]}
    assert set(_queue_order()[-10:]) == unscored
    assert set(Product.objects.filter(id__in=unscored).values_list("priority", flat=True)) == {0.0}


def test_default_strategy_ranks_every_scored_product_once():
    products = catalog_load(demo_rows(tagged=0, untagged=80))
    rng = np.random.default_rng(7)
    _active_version_with_scores(
        products,
        {
            p.id: {"a": float(rng.random()), "b": float(rng.random()), "c": float(rng.random())}
            for p in products
        },
    )
    summary = queue_priorities_recompute()
    assert summary["ranked"] == 80
    priorities = list(Product.objects.values_list("priority", flat=True))
    assert len(set(priorities)) == 80 and min(priorities) > 0 and max(priorities) == pytest.approx(1.0)


def test_stale_versions_scores_are_ignored():
    products = catalog_load(demo_rows(tagged=0, untagged=10))
    version = _active_version_with_scores(products, {p.id: {"a": 0.5, "b": 0.5} for p in products})
    # A newer active version has no suggestions yet: nothing is ranked on the old version's scores.
    ModelVersion.objects.filter(id=version.id).update(is_active=False)
    newer = ModelVersionFactory(version="v-newer")
    ModelVersion.objects.filter(id=newer.id).update(is_active=True)
    summary = queue_priorities_recompute()
    assert summary["ranked"] == 0
    assert set(Product.objects.values_list("priority", flat=True)) == {0.0}


@pytest.mark.django_db
def test_the_apps_queue_ranks_with_the_default_strategy(monkeypatch):
    """With no strategy chosen by an admin, the review queue is ranked with ``DEFAULT_STRATEGY``."""
    products = catalog_load(demo_rows(tagged=0, untagged=12))
    rng = np.random.default_rng(5)
    _active_version_with_scores(
        products, {p.id: {"a": float(rng.random()), "b": float(rng.random())} for p in products}
    )
    used = []

    def recording_rank(probs, **kwargs):
        used.append(kwargs["strategy"])
        return rank(probs, **kwargs)

    monkeypatch.setattr(queue_module, "rank", recording_rank)
    with memory_broker():
        summary = queue_priorities_recompute()
    assert queue_strategy() == DEFAULT_STRATEGY
    assert used == [DEFAULT_STRATEGY] and summary["strategy"] == DEFAULT_STRATEGY


def test_queue_ranks_by_the_stored_decisions_not_the_thresholds():
    """Same scores, different stored ``selected`` (closure selected a low-scored parent on some cards):
    the products whose card carries more likely-wrong decisions come first."""
    products = catalog_load(demo_rows(tagged=0, untagged=20))
    names = ["shirt", "tops"]
    tag_ids, _ = TagResolver().resolve(names, create=True)
    version = ModelVersionFactory(version="v-decisions", config={"tag_ids": {n: tag_ids[n] for n in names}})
    ModelVersion.objects.filter(id=version.id).update(is_active=True)
    closed = {p.id for p in products[::4]}
    Suggestion.objects.bulk_create(
        [
            Suggestion(
                product_id=p.id,
                tag_id=tag_ids[name],
                model_version=version,
                score=score,
                # At threshold 0.5 only "shirt" is selected; on the closed cards "tops" (its parent) is too.
                selected=name == "shirt" or p.id in closed,
            )
            for p in products
            for name, score in (("shirt", 0.6), ("tops", 0.3))
        ]
    )
    Product.objects.filter(id__in=[p.id for p in products]).update(
        suggested_by=version, needs_suggestion=False
    )
    queue_strategy_set(strategy="expected_errors")
    summary = queue_priorities_recompute()
    assert summary["ranked"] == 20
    # Expected wrong decisions: 0.4 + 0.7 on the closed cards, 0.4 + 0.3 on the others (which the
    # thresholds alone would give all twenty, tied).
    assert set(_queue_order()[: len(closed)]) == closed
