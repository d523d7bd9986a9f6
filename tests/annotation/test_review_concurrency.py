"""20 operators claiming and submitting on one shared queue at once, against the real PostgreSQL.

Each thread has its own database connection (Django's are per thread), so the claims really race in
PostgreSQL: FOR UPDATE SKIP LOCKED plus the re-check of a row another transaction just claimed is what
keeps two operators off the same product.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connection

from annotation.models import Product, ProductTag, ReviewAction, ReviewEvent, ReviewStatus
from annotation.services.reviews import review_claim_next, review_release, review_submit
from tests.factories import OperatorFactory, TagFactory, products_create

THREADS = 20
ROUNDS = 8


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_reviewers_never_share_a_product_and_lose_nothing():
    users = [OperatorFactory(username=f"op{i:02d}", password="x") for i in range(THREADS)]
    tags = [TagFactory(name=f"Tag {i}") for i in range(5)]
    # More products than submits, with ties in priority, so the queue head is contended every round.
    products_create(THREADS * ROUNDS + 40, priority=0.0)

    held: dict[int, int] = {}  # product id -> user id, while a thread holds the claim
    held_lock = threading.Lock()
    violations: list[str] = []
    submitted: list[tuple[int, int, str]] = []  # (product id, user id, tag name)
    releases = Counter()
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def reviewer(index: int) -> None:
        user = users[index]
        rng = random.Random(index)
        try:
            start.wait()
            for _ in range(ROUNDS):
                product = review_claim_next(user=user)
                if product is None:
                    violations.append(f"{user.username}: queue empty too early")
                    return
                with held_lock:
                    if product.pk in held:
                        violations.append(f"product {product.pk} held by {held[product.pk]} and {user.pk}")
                    held[product.pk] = user.pk
                if rng.random() < 0.25:  # sometimes give it back first, then take the next one
                    with held_lock:
                        held.pop(product.pk, None)
                    review_release(product=product, user=user)
                    releases[user.pk] += 1
                    product = review_claim_next(user=user)
                    with held_lock:
                        if product.pk in held:
                            violations.append(
                                f"product {product.pk} held by {held[product.pk]} and {user.pk}"
                            )
                        held[product.pk] = user.pk
                tag = rng.choice(tags).name
                review_submit(product=product, user=user, tags=[tag])
                with held_lock:
                    held.pop(product.pk, None)
                    submitted.append((product.pk, user.pk, tag))
        except BaseException as exc:  # report any failure from the thread in the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert not errors, errors
    assert not violations, violations
    assert len(submitted) == THREADS * ROUNDS
    # No product was reviewed twice (a reviewed product never re-enters the queue).
    assert len({pk for pk, _, _ in submitted}) == len(submitted)
    # No review lost: every submit has its audit event, its product state and its tag.
    events = ReviewEvent.objects.filter(action=ReviewAction.SUBMIT)
    assert events.count() == len(submitted)
    assert set(events.values_list("product_id", "user_id")) == {(pk, uid) for pk, uid, _ in submitted}
    assert Product.objects.filter(review_status=ReviewStatus.REVIEWED).count() == len(submitted)
    approved = set(ProductTag.objects.values_list("product_id", "tag__name"))
    assert approved == {(pk, tag) for pk, _, tag in submitted}
    assert not Product.objects.filter(claimed_by__isnull=False).exists()
    assert sum(releases.values()) > 0  # the release path was exercised
