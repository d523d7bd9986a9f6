"""Counters are live: the queue count moves with each review, the empty-queue page says how many are
left and why it is empty, the export table says it counts products (issue 15)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotation.models import ExportJob, JobStatus
from annotation.services.reviews import review_claim_next
from tests.factories import OperatorFactory, TagFactory, products_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

HTMX = {"HTTP_HX_REQUEST": "true"}


def _queue(html: str) -> str:
    return re.search(r'data-stat="queue">([^<]*)<', html).group(1)


def test_queue_count_moves_after_each_review(client, operator):
    products = products_create(3)
    TagFactory(name="Red")
    client.force_login(operator)
    page = client.get(reverse("review")).content.decode()
    assert _queue(page) == "3"
    for left in ("2", "1"):
        card = re.search(r'action="/review/(\d+)/submit/"', page).group(1)
        claim = re.search(r'name="claim" value="([^"]*)"', page)
        data = {"tags": ["Red"], **({"claim": claim.group(1)} if claim else {})}
        page = client.post(f"/review/{card}/submit/", data, **HTMX).content.decode()
        assert _queue(page) == left, f"queue count after a review: {_queue(page)}, want {left}"
    assert len(products) == 3


def test_empty_queue_page_counts_what_is_left_and_says_why(client, operator):
    products_create(1)
    other = OperatorFactory()
    assert review_claim_next(user=other) is not None
    client.force_login(operator)
    html = client.get(reverse("review")).content.decode()
    assert "Nothing to review right now" in html
    assert re.search(r'data-stat="queue-empty">1<', html)
    assert "claimed by other operators or skipped by you" in html


def test_export_table_counts_products_and_says_so(client, admin_user):
    ExportJob.objects.create(file_format="csv", status=JobStatus.SUCCEEDED, rows=7, file_path="/tmp/x.csv")
    client.force_login(admin_user)
    html = client.get(reverse("exports-jobs")).content.decode()
    assert ">Products</th>" in html and ">Rows</th>" not in html
    assert "counts the products in each file, not its lines" in html
    assert "<td>7</td>" in html
