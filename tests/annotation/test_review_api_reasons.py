"""The REST review card gives each suggestion the reason the HTML card shows on its chip: the same service
(annotation.services.explanations), null while the model is not loaded in the process, and its cost in
``Server-Timing``. Real trained artifacts, real explanations: nothing here is mocked but the load's speed."""

from __future__ import annotations

import html
import re
import threading
import time

import pytest
from django.test import Client

import mlcore.inference
from annotation.models import Product
from tests.annotation.training_support import trained_version
from tests.factories import ModelVersionFactory, TagFactory, products_create, suggestions_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

TITLE = "Nike Men Black Sports Shoes"


@pytest.fixture(autouse=True)
def explain_waits_for_the_model(settings):
    """Cards here wait for their model to load, unless a test says otherwise (a web process does not)."""
    settings.REVIEW_EXPLAIN_LOAD_WAIT_SECONDS = 120


def _product(title: str = TITLE) -> Product:
    (product,) = products_create(1)
    Product.objects.filter(pk=product.pk).update(title=title, lang="en")
    product.refresh_from_db()
    return product


def _reasons(body: dict) -> dict[str, dict | None]:
    return {s["tag"]: s["reason"] for s in body["suggestions"]}


def test_each_suggestion_carries_its_reason_once_the_model_is_loaded(operator_api):
    version = trained_version()
    product = _product()
    black, shoes = TagFactory(name="colour:black"), TagFactory(name="sports shoes")
    unknown = TagFactory(name="not-in-the-model")
    suggestions_create(product, version, {black: 0.91, shoes: 0.72, unknown: 0.3})

    response = operator_api.post("/api/v1/review/next/")

    assert response.status_code == 200, response.content
    reasons = _reasons(response.json())
    assert reasons["colour:black"]["summary"] == '"Black" in the title'
    assert reasons["colour:black"]["title_mentions"] == [{"start": 9, "end": 14, "text": "Black"}]
    assert TITLE[9:14] == "Black"
    assert reasons["sports shoes"]["title_mentions"] == [{"start": 15, "end": 27, "text": "Sports Shoes"}]
    for reason in (reasons["colour:black"], reasons["sports shoes"]):
        assert set(reason) == {"summary", "title_mentions", "neighbours", "words"}
        assert all(isinstance(word, str) and word for word in reason["words"])
    assert reasons["sports shoes"]["words"]  # the lexical tagger's strongest words for the tag
    assert reasons["not-in-the-model"] is None  # a tag the model does not know: no reason
    assert re.fullmatch(r"explain;dur=\d+\.\d\d(, explain-load;dur=\d+\.\d\d)?", response["Server-Timing"])
    assert "no-store" in response["Cache-Control"]


def test_reasons_are_null_while_the_model_loads_and_the_card_does_not_wait(
    operator_api, settings, monkeypatch
):
    version = trained_version()
    product = _product()
    black = TagFactory(name="colour:black")
    suggestions_create(product, version, {black: 0.9})
    loaded = threading.Event()
    real_load = mlcore.inference.load_model

    def slow_load(*args, **kwargs):
        loaded.wait(timeout=60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(mlcore.inference, "load_model", slow_load)
    settings.REVIEW_EXPLAIN_LOAD_WAIT_SECONDS = 0
    started = time.perf_counter()
    first = operator_api.post("/api/v1/review/next/")
    assert time.perf_counter() - started < 30
    assert first.status_code == 200
    assert _reasons(first.json()) == {"colour:black": None}  # the model is still loading
    # Nothing was explained: only the (short) wait for the model is reported.
    assert re.fullmatch(r"explain-load;dur=\d+\.\d\d", first["Server-Timing"])

    loaded.set()
    settings.REVIEW_EXPLAIN_LOAD_WAIT_SECONDS = 60
    again = operator_api.post("/api/v1/review/next/")  # the claim held: the same card
    assert again.json()["product"]["external_id"] == product.external_id
    assert _reasons(again.json())["colour:black"]["summary"] == '"Black" in the title'


def test_reasons_are_null_without_an_artifact_on_this_machine(operator_api):
    product = _product()
    black = TagFactory(name="colour:black")
    suggestions_create(product, ModelVersionFactory(is_active=True), {black: 0.9})
    response = operator_api.post("/api/v1/review/next/")
    assert response.status_code == 200
    assert _reasons(response.json()) == {"colour:black": None}
    assert "explain;" not in response.get("Server-Timing", "")  # nothing was explained


def _html_reasons(page: str, title: str) -> dict[int, dict]:
    """What the HTML card says per chip: the reason's text, its hover text, and the title words it marks."""
    title_html = re.search(r'<h1 class="product-title" id="product-title">(.*?)</h1>', page, re.S).group(1)
    marked: dict[int, list[str]] = {}
    for tags, text in re.findall(r'<mark class="mention" data-tags="([\d ]+)">(.*?)</mark>', title_html):
        for tag_id in tags.split():
            marked.setdefault(int(tag_id), []).append(html.unescape(text))
    out: dict[int, dict] = {}
    for tag_id, chip in re.findall(r'<label data-tag-id="(\d+)"(.*?)</label>', page, re.S):
        reason = re.search(r'<span class="reason" title="(.*?)">(.*?)</span>', chip, re.S)
        if reason is not None:
            out[int(tag_id)] = {
                "summary": html.unescape(reason.group(2)),
                "hover": html.unescape(reason.group(1)),
                "marked": marked.get(int(tag_id), []),
            }
    return out


def _hover(reason: dict) -> str:
    """The chip's hover text as the HTML card builds it from a reason (templates/annotation/_review_chip.html)."""
    parts = []
    if reason["neighbours"]:
        parts.append("similar approved: " + "; ".join(reason["neighbours"]))
    if reason["words"]:
        parts.append("words: " + ", ".join(reason["words"]))
    return " · ".join(parts)


def test_the_api_and_the_html_card_give_each_chip_the_same_reason(operator, operator_api):
    title = "Esprit Men Black Steel Watches <b>gift</b>"
    product = _product(title)
    black = TagFactory(name="shade:black")  # renamed since training: both must ask by the trained name
    watches, unknown = TagFactory(name="watches"), TagFactory(name="not-in-the-model")
    version = trained_version(config={"tag_ids": {"colour:black": black.pk}})
    suggestions_create(product, version, {black: 0.9, watches: 0.8, unknown: 0.2})

    api = operator_api.post("/api/v1/review/next/").json()
    browser = Client()
    browser.force_login(operator)
    page = browser.get("/review/").content.decode()  # the card of the claim the API call took
    assert f'data-product="{product.external_id}"' in page

    html_reasons = _html_reasons(page, title)
    tag_ids = {"shade:black": black.pk, "watches": watches.pk, "not-in-the-model": unknown.pk}
    api_reasons = _reasons(api)
    assert set(api_reasons) == set(tag_ids)
    for name, reason in api_reasons.items():
        shown = html_reasons.get(tag_ids[name])
        if reason is None:
            assert shown is None, f"{name}: the HTML card has a reason the API does not"
            continue
        assert shown is not None, f"{name}: the API has a reason the HTML card does not"
        assert shown["summary"] == reason["summary"], name
        assert shown["hover"] == _hover(reason), name
        assert shown["marked"] == [m["text"] for m in reason["title_mentions"]], name
        assert all(title[m["start"] : m["end"]] == m["text"] for m in reason["title_mentions"])
    assert api_reasons["shade:black"]["summary"] == '"Black" in the title'
    assert api_reasons["not-in-the-model"] is None
