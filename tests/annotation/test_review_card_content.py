"""The review card shows the whole product (image, brand, category, attributes, description) and says why
each suggestion is there (mlcore's explanations), with the title words that mention a tag marked."""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.test import Client

import mlcore.inference
from annotation.models import Product
from annotation.selectors.review import TitleSegment, title_segments
from annotation.services.model_files import artifact_dir
from tests.annotation.training_support import trained_version
from tests.factories import ModelVersionFactory, TagFactory, products_create, suggestions_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture(autouse=True)
def explain_waits_for_the_model(settings):
    """Cards here wait for their model to load (a web process shows the first cards without reasons)."""
    settings.REVIEW_EXPLAIN_LOAD_WAIT_SECONDS = 120


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    assert client.login(username="olivia", password="operator-pass-123")
    return client


def _product(**fields) -> Product:
    (product,) = products_create(1)
    Product.objects.filter(pk=product.pk).update(**fields)
    product.refresh_from_db()
    return product


def test_card_shows_image_brand_category_attributes_and_description(operator_client):
    _product(
        title="Floral Summer Dress",
        brand="Acme & Sons",
        category_path=["Women", "Dresses"],
        attributes={"material": "cotton", "sizes": ["S", "M"]},
        description="Light cotton dress.\nMachine wash.",
        image_url="https://images.example.invalid/dress.jpg",
        lang="en",
    )
    page = operator_client.get("/review/").content.decode()
    image = re.search(r'<img class="product-image"[^>]*>', page, re.S).group(0)
    assert 'src="https://images.example.invalid/dress.jpg"' in image
    assert 'loading="lazy"' in image and 'width="200"' in image and 'height="200"' in image
    assert "onerror=" in image  # swaps in the placeholder, which needs no network
    assert '<div class="image-placeholder" role="img" aria-label="image not available" hidden>' in page
    assert '<dd class="brand">Acme &amp; Sons</dd>' in page
    assert "<span>Women</span> › <span>Dresses</span>" in page
    assert '<th scope="row">material</th><td>cotton</td>' in page
    assert '<th scope="row">sizes</th><td>S, M</td>' in page
    assert re.search(r'<details class="description" open>\s*<summary>Description</summary>', page)
    assert "Light cotton dress.<br>Machine wash." in page
    assert 'lang="en"' in page


def test_card_without_image_has_no_img_and_chinese_text_renders(operator_client):
    _product(
        title="纯棉碎花连衣裙 夏季",
        brand="优衣库",
        category_path=["女装", "连衣裙"],
        attributes={"面料": "棉"},
        description="柔软透气。" * 100,  # long: the description starts collapsed
        image_url="",
        lang="zh",
    )
    page = operator_client.get("/review/").content.decode()
    assert "product-image" not in page.split('class="product-body"')[1].split("</article>")[0]
    assert '<article class="card product" lang="zh">' in page
    assert "纯棉碎花连衣裙 夏季</h1>" in page
    assert '<dd class="brand">优衣库</dd>' in page and "<span>女装</span>" in page
    assert '<th scope="row">面料</th><td>棉</td>' in page
    assert re.search(r'<details class="description">\s*<summary>', page)


def test_image_url_that_is_not_http_is_not_rendered(operator_client):
    _product(title="A shirt", image_url="javascript:alert(1)")
    page = operator_client.get("/review/").content.decode()
    assert "javascript:alert" not in page


def test_title_segments_split_at_mentions_and_keep_text():
    title = "Black <b>Dress</b> black"
    segments = title_segments(title, {7: [(0, 5), (19, 24)], 9: [(0, 18)], 11: [(30, 40), (3, 3)]})
    assert "".join(s.text for s in segments) == title
    assert segments == [
        TitleSegment("Black", (7, 9)),
        TitleSegment(" <b>Dress</b>", (9,)),
        TitleSegment(" ", ()),
        TitleSegment("black", (7,)),
    ]
    assert title_segments("plain", {}) == [TitleSegment("plain", ())]
    assert title_segments("", {1: [(0, 2)]}) == []


def test_card_with_a_version_but_no_artifact_renders_without_reasons(operator_client):
    product = _product(title="Black Watches")
    black = TagFactory(name="colour:black")
    suggestions_create(product, ModelVersionFactory(is_active=True), {black: 0.9})
    response = operator_client.get("/review/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "colour:black" in page and 'class="reason"' not in page and "<mark" not in page


def test_card_with_a_broken_artifact_renders_without_reasons(operator_client):
    product = _product(title="Black Watches")
    black = TagFactory(name="colour:black")
    version = ModelVersionFactory(is_active=True)
    artifact_dir(version).mkdir(parents=True)
    (artifact_dir(version) / "tagger.json").write_text("{not json", encoding="utf-8")
    suggestions_create(product, version, {black: 0.9})
    response = operator_client.get("/review/")
    assert response.status_code == 200
    assert 'class="reason"' not in response.content.decode()


def _chip(page: str, tag_id: int) -> str:
    return re.search(rf'<label data-tag-id="{tag_id}".*?</label>', page, re.S).group(0)


def test_each_chip_says_why_and_title_mentions_are_marked_and_escaped(operator_client):
    version = trained_version()
    product = _product(title='<script>alert("x")</script> Nike Men Black Sports Shoes', lang="en")
    black, shoes = TagFactory(name="colour:black"), TagFactory(name="sports shoes")
    unknown = TagFactory(name="not-in-the-model")
    suggestions_create(product, version, {black: 0.91, shoes: 0.72, unknown: 0.3})

    page = operator_client.get("/review/").content.decode()
    assert "<script>alert" not in page
    title = re.search(r'<h1 class="product-title" id="product-title">(.*?)</h1>', page, re.S).group(1)
    assert title.startswith("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Nike Men ")
    assert f'<mark class="mention" data-tags="{black.pk}">Black</mark>' in title
    assert f'<mark class="mention" data-tags="{shoes.pk}">Sports Shoes</mark>' in title
    assert '<span class="reason"' in _chip(page, black.pk)
    assert "&quot;Black&quot; in the title</span>" in _chip(page, black.pk)
    assert "&quot;Sports Shoes&quot; in the title</span>" in _chip(page, shoes.pk)
    assert 'class="reason"' not in _chip(page, unknown.pk)  # a tag the model does not know: no reason


def test_a_card_does_not_wait_for_its_model_to_load(operator_client, settings, monkeypatch):
    version = trained_version()
    product = _product(title="Esprit Men Black Steel Watches")
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
    first = operator_client.get("/review/").content.decode()
    assert time.perf_counter() - started < 30
    assert "colour:black" in first and 'class="reason"' not in first  # the model is still loading
    loaded.set()
    settings.REVIEW_EXPLAIN_LOAD_WAIT_SECONDS = 60
    again = operator_client.get("/review/").content.decode()
    assert "&quot;Black&quot; in the title</span>" in _chip(again, black.pk)


def test_reasons_use_the_name_the_version_was_trained_with(operator_client):
    product = _product(title="Esprit Men Black Steel Watches")
    renamed = TagFactory(name="shade:black")
    version = trained_version(config={"tag_ids": {"colour:black": renamed.pk}})
    suggestions_create(product, version, {renamed: 0.8})
    page = operator_client.get("/review/").content.decode()
    assert "&quot;Black&quot; in the title</span>" in _chip(page, renamed.pk)


@pytest.mark.slow
def test_default_tagger_reasons_cite_similar_products_or_words(operator_client):
    version = trained_version(tagger="default")
    product = _product(title="Roadster Men Navy Casual Shirt", lang="en")
    tags = [TagFactory(name=name) for name in ("shirts", "usage:casual", "gender:men")]
    suggestions_create(product, version, dict(zip(tags, (0.9, 0.8, 0.7))))
    page = operator_client.get("/review/").content.decode()
    for tag in tags:
        assert '<span class="reason"' in _chip(page, tag.pk), tag.name
