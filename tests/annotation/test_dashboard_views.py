"""The dashboard page: who may see it, and that its charts and tables are drawn from the database."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    Product,
    ReviewStatus,
)
from annotation.views.dashboard.views import bar_chart, line_chart
from tests.factories import (
    ModelVersionFactory,
    ProductTagFactory,
    ReviewEventFactory,
    SuggestionFactory,
    TagFactory,
    products_create,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


def build_history(operator) -> dict:
    """Two model versions, reviews over three days, one suspicious label."""
    now = timezone.now()
    per_tag = {
        "dress": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "support": 30},
        "boots": {"precision": 0.1, "recall": 0.2, "f1": 0.133, "support": 4},
    }
    v1 = ModelVersionFactory(
        version="v1",
        metrics={"micro_f1": 0.55, "p@1": 0.6},
        train_size=100,
        created_at=now - dt.timedelta(days=3),
    )
    v2 = ModelVersionFactory(
        version="v2",
        is_active=True,
        metrics={"micro_f1": 0.71, "p@1": 0.8, "p@5": 0.3, "per_tag": per_tag},
        train_size=400,
        created_at=now - dt.timedelta(days=1),
    )
    dress, boots = TagFactory(name="dress"), TagFactory(name="boots")
    products = products_create(4, review_status=ReviewStatus.REVIEWED)
    for i, product in enumerate(products):
        version = v1 if i < 2 else v2
        ReviewEventFactory(
            product=product,
            user=operator,
            created_at=now - dt.timedelta(days=i % 3),
            model_version=version,
            shown=[
                {"tag": "dress", "tag_id": dress.pk, "score": 0.9, "selected": True, "model_version": "v"}
            ],
            final_tags=["dress"] if i % 2 == 0 else ["boots"],
            accepted=["dress"] if i % 2 == 0 else [],
            rejected=[] if i % 2 == 0 else ["dress"],
            added=[] if i % 2 == 0 else ["boots"],
        )
    suspicious = products[3]
    Product.objects.filter(pk=suspicious.pk).update(tags_updated_at=now)
    ProductTagFactory(product=suspicious, tag=boots)
    SuggestionFactory(product=suspicious, tag=dress, model_version=v2, score=0.98, selected=True)
    SuggestionFactory(product=suspicious, tag=boots, model_version=v2, score=0.01)
    return {"suspicious": suspicious}


def test_dashboard_is_for_operators_and_admins(client, operator, admin_user):
    for url in (reverse("dashboard"), reverse("dashboard-per-tag"), reverse("dashboard-suspicious")):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    nobody = get_user_model().objects.create_user("nobody", password="no-role-pass-123")
    client.force_login(nobody)
    assert client.get(reverse("dashboard")).status_code == 403
    for user in (operator, admin_user):
        client.force_login(user)
        assert client.get(reverse("dashboard")).status_code == 200
        assert client.get(reverse("dashboard-suspicious")).status_code == 200


def test_empty_dashboard_says_so(client, operator):
    client.force_login(operator)
    page = client.get(reverse("dashboard")).content.decode()
    assert "No reviews in this period." in page
    assert "No trained model yet." in page
    assert "No active model version yet." in page
    assert "Needs an active model version" in client.get(reverse("dashboard-suspicious")).content.decode()


def test_dashboard_draws_charts_and_tables_from_the_database(client, operator):
    build_history(operator)
    client.force_login(operator)
    page = client.get(reverse("dashboard")).content.decode()

    assert re.search(r'data-figure="products">\s*4<', page)
    assert re.search(r'data-figure="reviewed">\s*4<', page)
    charts = dict(re.findall(r'<figure class="chart" data-chart="([\w-]+)">(.*?)</figure>', page, re.S))
    assert set(charts) == {"reviews-per-day", "model-versions", "learning-curve", "accepted-unchanged"}
    # Reviews per day: one bar per day with reviews (3 days), with the count in its tooltip.
    assert charts["reviews-per-day"].count('<rect class="bar"') == 3
    assert ": 2</title>" in charts["reviews-per-day"]
    # Versions over time: micro-F1 and P@1 lines through both versions.
    assert charts["model-versions"].count("<polyline") == 2
    assert "micro-F1 0.710 — v2" in charts["model-versions"]
    # Learning curve: F1 against training size.
    assert "v1, 100 products" in charts["learning-curve"] and "v2, 400 products" in charts["learning-curve"]
    # Accepted unchanged per version: v1 and v2 each have one unchanged card of two.
    assert charts["accepted-unchanged"].count("<title>v1: 50%</title>") == 1
    # Per-tag table: worst tag first; the operator table shows acceptance.
    assert page.index(">boots</a></td>") < page.index(">dress</a></td>")
    assert "olivia" in page and "50%" in page


def test_per_tag_fragment_sorts(client, operator):
    build_history(operator)
    client.force_login(operator)
    best_first = client.get(reverse("dashboard-per-tag"), {"sort": "f1", "dir": "desc"}).content.decode()
    assert best_first.index(">dress</a></td>") < best_first.index(">boots</a></td>")
    assert 'href="/candidates/?tag=boots"' in best_first  # each tag opens its candidate grid
    assert 'aria-sort="descending"' in best_first
    by_name = client.get(reverse("dashboard-per-tag"), {"sort": "nonsense"}).content.decode()
    assert by_name.index(">boots</a></td>") < by_name.index(">dress</a></td>")  # falls back to worst first


def test_suspicious_fragment_links_for_a_second_look(client, operator):
    history = build_history(operator)
    client.force_login(operator)
    body = client.get(reverse("dashboard-suspicious")).content.decode()
    product = history["suspicious"]
    assert f'data-product="{product.pk}"' in body
    assert f'href="{reverse("product-detail", args=[product.pk])}"' in body
    assert "boots 0.010" in body and "dress 0.980" in body


def test_chart_geometry():
    chart = line_chart("c", "t", xs=[0, 10], series={"a": [0.0, 1.0], "b": [0.5, None]})
    assert (
        chart.series[0].points == f"{chart.plot_left:.1f},{chart.plot_bottom:.1f} {chart.plot_right:.1f},14.0"
    )
    assert len(chart.series[1].dots) == 1  # a missing value leaves a gap
    bars = bar_chart("b", "t", labels=["x", "y"], values=[2, 4])
    heights = [float(bar["height"]) for bar in bars.bars]
    assert heights[1] == pytest.approx(2 * heights[0])
    assert bar_chart("b", "t", labels=["x"], values=[0]).empty
    assert line_chart("c", "t", xs=[], series={}).empty
