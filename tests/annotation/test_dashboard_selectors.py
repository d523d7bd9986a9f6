"""Dashboard figures against the real PostgreSQL: every number checked against data built by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from annotation.models import (
    ModelState,
    Product,
    ReviewAction,
    ReviewEvent,
    ReviewStatus,
    Suggestion,
    TagSource,
)
from annotation.selectors.dashboard import (
    catalog_counts,
    learning_curve,
    model_versions_timeline,
    per_tag_quality,
    review_activity,
    suspicious_labels,
)
from tests.factories import (
    ModelVersionFactory,
    ProductTagFactory,
    ReviewEventFactory,
    SuggestionFactory,
    TagFactory,
    products_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


def review(product, user, *, when, shown=(), final=(), added=(), version=None, action=ReviewAction.SUBMIT):
    """An audit event as annotation.services.reviews writes it: tag names, ``shown`` with selected flags."""
    shown_rows = [
        {
            "tag": name,
            "tag_id": i,
            "score": 0.9 if selected else 0.1,
            "selected": selected,
            "model_version": "v",
        }
        for i, (name, selected) in enumerate(shown)
    ]
    return ReviewEventFactory(
        product=product,
        user=user,
        action=action,
        created_at=when,
        model_version=version,
        shown=shown_rows,
        final_tags=list(final),
        accepted=[name for name, _ in shown if name in final],
        # Like the review service: every shown suggestion not kept, selected or not.
        rejected=[name for name, _ in shown if name not in final],
        added=list(added),
    )


def test_catalog_counts(operator):
    products = products_create(10)
    Product.objects.filter(pk__in=[p.pk for p in products[:4]]).update(review_status=ReviewStatus.REVIEWED)
    future = timezone.now() + dt.timedelta(minutes=5)
    Product.objects.filter(pk=products[5].pk).update(claimed_by=operator, claim_expires_at=future)
    # An expired claim is free again: not counted.
    Product.objects.filter(pk=products[6].pk).update(
        claimed_by=operator, claim_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    counts = catalog_counts()
    assert counts == {
        "products": 10,
        "reviewed": 4,
        "pending": 6,
        "claimed": 1,
        "estimated": False,
        "reviewed_share": 0.4,
    }


def test_review_activity_per_day_operator_and_version(operator, admin_user):
    now = timezone.now()
    products = products_create(6)
    v1 = ModelVersionFactory(version="v1", metrics={}, train_size=10, created_at=now - dt.timedelta(days=5))
    v2 = ModelVersionFactory(version="v2", metrics={}, train_size=20, created_at=now - dt.timedelta(days=1))
    # operator: two cards. The first keeps both selected suggestions (the unselected "zip" is listed as
    # rejected by the audit, which does not make the card changed); the second drops one selected
    # suggestion and adds a tag.
    review(
        products[0],
        operator,
        when=now,
        shown=[("a", True), ("b", True), ("zip", False)],
        final=["a", "b"],
        version=v2,
    )
    first = review(
        products[1],
        operator,
        when=now - dt.timedelta(days=2),
        shown=[("a", True), ("c", True), ("y", False)],
        final=["a", "d"],
        added=["d"],
        version=v1,
    )
    ReviewEvent.objects.create(
        product=products[1],
        user=operator,
        action=ReviewAction.UNDO,
        created_at=now - dt.timedelta(days=2),
        reverts=first,
    )
    # admin: one unchanged card with v1 (an ancestor implied by the hierarchy is not an addition).
    review(
        products[2],
        admin_user,
        when=now - dt.timedelta(days=2),
        shown=[("e", True)],
        final=["e", "e parent"],
        version=v1,
    )
    # Outside the 30-day window: ignored.
    review(products[3], admin_user, when=now - dt.timedelta(days=40), shown=[("e", True)], version=v1)
    # A skip is not a review.
    review(products[4], admin_user, when=now, action=ReviewAction.SKIP)

    activity = review_activity(days=30, now=now)
    assert len(activity["per_day"]) == 30
    by_day = {row["day"]: row for row in activity["per_day"]}
    today = timezone.localdate(now)
    assert by_day[today]["submits"] == 1
    assert by_day[today - dt.timedelta(days=2)] == {
        "day": today - dt.timedelta(days=2),
        "submits": 2,
        "undos": 1,
    }
    assert activity["total_reviews"] == 3

    operators = {row["username"]: row for row in activity["operators"]}
    assert operators["olivia"]["reviews"] == 2
    assert operators["olivia"]["undos"] == 1
    assert operators["olivia"]["acceptance"] == pytest.approx(3 / 4)  # 3 kept, 1 rejected
    assert operators["olivia"]["unchanged_share"] == pytest.approx(1 / 2)
    assert operators["olivia"]["added"] == 1
    assert operators["adam"]["reviews"] == 1
    assert operators["adam"]["acceptance"] == 1.0
    assert [row["username"] for row in activity["operators"]] == ["olivia", "adam"]  # most reviews first

    versions = {row["version"]: row for row in activity["versions"]}
    assert [row["version"] for row in activity["versions"]] == ["v1", "v2"]  # oldest version first
    assert versions["v1"]["reviews"] == 2
    assert versions["v1"]["unchanged_share"] == pytest.approx(1 / 2)
    assert versions["v1"]["acceptance"] == pytest.approx(2 / 3)
    assert versions["v2"]["unchanged_share"] == 1.0


def test_review_activity_caches_closed_days_only(operator):
    now = timezone.now()
    products = products_create(4)
    yesterday = now - dt.timedelta(days=1)
    review(products[0], operator, when=yesterday, shown=[("a", True)], final=["a"])
    review(products[1], operator, when=now, shown=[("a", True)], final=["a"])
    first = review_activity(days=7, now=now)
    assert first["total_reviews"] == 2
    assert review_activity(days=7, now=now, use_cache=False) == first

    # Today's figures are always read again; a closed day comes from the cache.
    review(products[2], operator, when=now, shown=[("a", True)], final=["b"], added=["b"])
    review(products[3], operator, when=yesterday, shown=[("a", True)], final=["a"])
    second = review_activity(days=7, now=now)
    assert second["total_reviews"] == 3
    assert second["operators"][0]["unchanged_share"] == pytest.approx(2 / 3)
    assert review_activity(days=7, now=now, use_cache=False)["total_reviews"] == 4


def test_model_timeline_and_learning_curve():
    now = timezone.now()
    ModelVersionFactory(
        version="v1",
        metrics={"micro_f1": 0.5, "p@1": 0.6, "per_tag": {}},
        train_size=100,
        created_at=now - dt.timedelta(days=3),
    )
    ModelVersionFactory(
        version="v2",
        metrics={"micro_f1": 0.7, "p@1": 0.8, "p@5": 0.3},
        train_size=300,
        created_at=now - dt.timedelta(days=2),
    )
    ModelVersionFactory(
        version="v3", metrics={"micro_f1": 0.65, "p@1": 0.75}, train_size=200, created_at=now, is_active=True
    )
    ModelVersionFactory(version="broken", state=ModelState.FAILED, created_at=now)

    timeline = model_versions_timeline()
    assert [row["version"] for row in timeline] == ["v1", "v2", "v3"]
    assert [row["micro_f1"] for row in timeline] == [0.5, 0.7, 0.65]
    assert [row["p_at_1"] for row in timeline] == [0.6, 0.8, 0.75]
    assert timeline[1]["p_at_5"] == 0.3 and timeline[0]["p_at_5"] is None
    assert timeline[2]["is_active"] is True

    curve = learning_curve(timeline)
    assert [(p["train_size"], p["micro_f1"]) for p in curve] == [(100, 0.5), (200, 0.65), (300, 0.7)]


def test_per_tag_quality_worst_first_and_sortable():
    per_tag = {
        "dress": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 40},
        "boots": {"precision": 0.2, "recall": 0.1, "f1": 0.13, "support": 5},
        "scarf": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2},
        "hat": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 9},
    }
    ModelVersionFactory(
        version="v1",
        metrics={"micro_f1": 0.6, "per_tag": per_tag},
        train_size=50,
        created_at=timezone.now(),
        is_active=True,
    )
    table = per_tag_quality()
    # Worst F1 first; between equal F1, the tag with more support first.
    assert [row["tag"] for row in table["rows"]] == ["hat", "scarf", "boots", "dress"]
    assert table["total"] == 4 and table["version"] == "v1"
    assert [row["tag"] for row in per_tag_quality(sort="support", descending=True)["rows"]] == [
        "dress",
        "hat",
        "boots",
        "scarf",
    ]
    assert [row["tag"] for row in per_tag_quality(sort="tag")["rows"]] == ["boots", "dress", "hat", "scarf"]
    assert len(per_tag_quality(limit=2)["rows"]) == 2
    with pytest.raises(ValueError, match="sort must be one of"):
        per_tag_quality(sort="score")


def test_per_tag_quality_without_active_model():
    assert per_tag_quality()["rows"] == []


def test_suspicious_labels_confidence_rule():
    now = timezone.now()
    version = ModelVersionFactory(version="v1", metrics={}, train_size=10, created_at=now, is_active=True)
    old = ModelVersionFactory(version="v0", metrics={}, train_size=5, created_at=now - dt.timedelta(days=1))
    dress, boots, shoes, hat = (TagFactory(name=n) for n in ("dress", "boots", "shoes", "hat"))
    wrong, fine, unscored, old_only = products_create(4, tags_updated_at=now)

    # wrong: approved "boots" scored 0.01 while "dress" (absent) scores 0.97 -> suspicious.
    ProductTagFactory(product=wrong, tag=boots, source=TagSource.REVIEW)
    ProductTagFactory(product=wrong, tag=hat, source=TagSource.REVIEW)
    SuggestionFactory(product=wrong, tag=dress, model_version=version, score=0.97)
    SuggestionFactory(product=wrong, tag=boots, model_version=version, score=0.01)
    SuggestionFactory(product=wrong, tag=hat, model_version=version, score=0.6)
    # fine: the high-scored tag is approved -> nothing to object to.
    ProductTagFactory(product=fine, tag=dress, source=TagSource.REVIEW)
    ProductTagFactory(product=fine, tag=boots, source=TagSource.IMPORT)
    SuggestionFactory(product=fine, tag=dress, model_version=version, score=0.95)
    SuggestionFactory(product=fine, tag=boots, model_version=version, score=0.02)
    # unscored: approved "shoes" has no stored suggestion, and the lowest stored score (0.03) bounds it.
    ProductTagFactory(product=unscored, tag=shoes, source=TagSource.IMPORT)
    SuggestionFactory(product=unscored, tag=dress, model_version=version, score=0.93)
    SuggestionFactory(product=unscored, tag=hat, model_version=version, score=0.03)
    # old_only: the disagreement comes from an inactive version -> ignored.
    ProductTagFactory(product=old_only, tag=boots, source=TagSource.REVIEW)
    SuggestionFactory(product=old_only, tag=dress, model_version=old, score=0.99)
    SuggestionFactory(product=old_only, tag=boots, model_version=old, score=0.001)

    result = suspicious_labels()
    assert result["version"] == "v1"
    rows = {row["external_id"]: row for row in result["rows"]}
    assert set(rows) == {wrong.external_id, unscored.external_id}
    assert [t["tag"] for t in rows[wrong.external_id]["doubted"]] == ["boots"]
    assert rows[wrong.external_id]["doubted"][0]["score"] == pytest.approx(0.01)
    assert [(t["tag"], t["score"]) for t in rows[wrong.external_id]["missing"]] == [
        ("dress", pytest.approx(0.97))
    ]
    assert rows[unscored.external_id]["doubted"][0]["score"] is None
    assert rows[unscored.external_id]["doubted"][0]["bound"] == pytest.approx(0.03)
    # Most suspicious first: the lower label quality against the stronger objection.
    assert [row["external_id"] for row in result["rows"]] == [wrong.external_id, unscored.external_id]

    # With a product whose lowest stored score is high, an unscored approved tag is not known to be low.
    Suggestion.objects.filter(product=unscored, tag=hat).update(score=0.4)
    assert {row["external_id"] for row in suspicious_labels()["rows"]} == {wrong.external_id}


def test_suspicious_labels_scans_recent_products_only():
    now = timezone.now()
    version = ModelVersionFactory(version="v1", metrics={}, train_size=10, created_at=now, is_active=True)
    dress, boots = (TagFactory(name=n) for n in ("dress", "boots"))
    older, newer = products_create(2)
    for product, when in ((older, now - dt.timedelta(days=3)), (newer, now)):
        product.tags_updated_at = when
        product.save(update_fields=["tags_updated_at"])
        ProductTagFactory(product=product, tag=boots, source=TagSource.REVIEW)
        SuggestionFactory(product=product, tag=dress, model_version=version, score=0.99)
        SuggestionFactory(product=product, tag=boots, model_version=version, score=0.01)
    assert [row["external_id"] for row in suspicious_labels(scan_products=1)["rows"]] == [newer.external_id]
    assert {row["external_id"] for row in suspicious_labels(scan_products=10)["rows"]} == {
        older.external_id,
        newer.external_id,
    }


def test_suspicious_labels_without_active_model():
    assert suspicious_labels() == {"version": None, "rows": [], "scanned": 0, "low": 0.05, "high": 0.9}
