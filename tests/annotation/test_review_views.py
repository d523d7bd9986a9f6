"""The HTML review workflow through Django's test client: pages, htmx partials, roles, CSRF, escaping."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import NoReverseMatch, reverse

from annotation.models import Product, ProductTag, ReviewEvent, ReviewStatus, Tag
from annotation.selectors.catalog import ProductListFilter, product_list
from tests.factories import ModelVersionFactory, TagFactory, products_create, suggestions_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    assert client.login(username="olivia", password="operator-pass-123")
    return client


@pytest.fixture
def admin_client_(admin_user) -> Client:
    client = Client()
    assert client.login(username="adam", password="admin-pass-123")
    return client


def test_login_page_and_redirects():
    assert Client().get("/review/")["Location"].startswith("/login/")
    page = Client().get("/login/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content


def test_login_with_password_lands_on_the_review_page(operator):
    client = Client()
    response = client.post("/login/", {"username": "olivia", "password": "operator-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/review/"
    bad = Client().post("/login/", {"username": "olivia", "password": "wrong"})
    assert bad.status_code == 200 and b"Please enter a correct" in bad.content


def test_review_page_shows_card_chips_scores_and_shortcuts(operator_client, operator):
    (product,) = products_create(1, description="Line one\nLine two")
    Product.objects.filter(pk=product.pk).update(
        category_path=["Women", "Dresses"], attributes={"color": "red", "sizes": ["S", "M"]}
    )
    red, blue, wool = TagFactory(name="Red"), TagFactory(name="Blue"), TagFactory(name="Wool")
    ProductTag.objects.create(product=product, tag=wool, source="import")
    suggestions_create(product, ModelVersionFactory(version="v2", is_active=True), {red: 0.93, blue: 0.41})

    page = operator_client.get("/review/").content.decode()

    assert product.title in page
    assert "Line one<br>Line two" in page
    assert "Women</span> › <span>Dresses" in page
    assert "S, M" in page
    assert page.index("Red") < page.index("Blue")  # chips sorted by score
    assert "0.93" in page and "0.41" in page
    assert "approved · import" in page
    assert "suggested by v2" in page
    for shortcut in ("<kbd>s</kbd>", "<kbd>u</kbd>", "<kbd>/</kbd>", "<kbd>Enter</kbd>", "<kbd>a</kbd>"):
        assert shortcut in page
    assert 'name="shown_version"' in page
    assert Product.objects.get(pk=product.pk).claimed_by == operator


def test_htmx_submit_saves_and_returns_the_next_card(operator_client):
    first, second = products_create(2)
    red = TagFactory(name="Red")
    version = ModelVersionFactory(version="v1", is_active=True)
    suggestions_create(first, version, {red: 0.9})
    operator_client.get("/review/")

    response = operator_client.post(
        f"/review/{first.pk}/submit/", {"tags": ["Red"], "shown_version": version.pk}, **HTMX
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="review-card"')  # a partial, not a page
    assert f"Saved {first.external_id} with 1 tag" in html
    assert second.title in html
    assert 'id="review-stats" hx-swap-oob="true"' in html
    assert re.search(r'data-stat="today">1<', html)
    event = ReviewEvent.objects.get()
    assert event.accepted == ["Red"] and event.model_version_id == version.pk


def test_plain_form_submit_redirects_to_the_review_page(operator_client):
    (product,) = products_create(1)
    response = operator_client.post(f"/review/{product.pk}/submit/", {"tags": []})
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert Product.objects.get(pk=product.pk).review_status == ReviewStatus.REVIEWED


def test_operator_gets_a_clear_message_for_an_unknown_tag_and_keeps_the_card(operator_client):
    (product,) = products_create(1)
    TagFactory(name="Red")
    operator_client.get("/review/")

    response = operator_client.post(f"/review/{product.pk}/submit/", {"tags": ["Red", "Glitter"]}, **HTMX)

    assert response.status_code == 422
    html = response.content.decode()
    assert "Unknown tag: Glitter. Only admins can create new tags" in html
    assert product.title in html  # same product, nothing lost
    assert 'value="Glitter" checked' in html
    assert not ReviewEvent.objects.exists()
    assert not Tag.objects.filter(normalized_name="glitter").exists()


def test_tag_check_and_autocomplete(operator_client, admin_client_):
    TagFactory(name="Sneakers", aliases=("Trainers",))
    TagFactory(name="Sandals")
    ok = operator_client.get("/review/tags/check/", {"name": "trainers"}).json()
    assert ok == {"ok": True, "name": "Sneakers", "new": False, "message": ""}
    refused = operator_client.get("/review/tags/check/", {"name": "Glitter"}).json()
    assert refused["ok"] is False and "only admins can create new tags" in refused["message"]
    assert admin_client_.get("/review/tags/check/", {"name": "Glitter"}).json()["new"] is True

    options = operator_client.get("/review/tags/", {"q": "tra"}).content.decode()
    assert 'value="Sneakers"' in options and "Trainers → Sneakers" in options
    options = operator_client.get("/review/tags/", {"q": "s"}).content.decode()
    assert 'value="Sandals"' in options and 'value="Sneakers"' in options


def test_skip_and_undo_through_the_page(operator_client):
    first, second = products_create(2)
    operator_client.get("/review/")
    html = operator_client.post(f"/review/{first.pk}/skip/", **HTMX).content.decode()
    assert f"Skipped {first.external_id}" in html and second.title in html

    operator_client.post(f"/review/{second.pk}/submit/", {"tags": []}, **HTMX)
    html = operator_client.post("/review/undo/", **HTMX).content.decode()
    assert f"Undid your review of {second.external_id}" in html
    assert second.title in html
    assert Product.objects.get(pk=second.pk).review_status == ReviewStatus.UNREVIEWED


def test_empty_queue_says_so(operator_client):
    html = operator_client.get("/review/").content.decode()
    assert "Nothing to review right now" in html


def test_script_in_product_text_is_escaped(operator_client):
    Product.objects.create(
        external_id="XSS-1",
        title="<script>alert(1)</script>",
        description='<img src=x onerror="alert(2)">',
        brand="<b>bold</b>",
        attributes={"<i>k</i>": "<script>v</script>"},
    )
    for url in ("/review/", "/products/?status=all", f"/products/{Product.objects.get().pk}/"):
        html = operator_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert "<img src=x" not in html, url


def test_product_list_keyset_pages_cover_everything_once(operator_client):
    products_create(7, prefix="A", priority=2.0)
    products_create(8, prefix="B", priority=1.0)
    seen: list[str] = []
    url = "/products/?status=unreviewed&sort=priority"
    pages = 0
    while url:
        html = operator_client.get(url).content.decode()
        seen += re.findall(r'href="/products/\d+/">([^<]+)</a>', html)
        match = re.search(r'href="\?([^"]+)" rel="next"', html)
        url = "/products/?" + match.group(1).replace("&amp;", "&") if match else ""
        pages += 1
    assert pages == 1  # 15 rows fit one page of 50
    expected = [f"A-{i:04d}" for i in range(7)] + [f"B-{i:04d}" for i in range(8)]
    assert seen == expected


@pytest.mark.parametrize("sort", ["priority", "updated"])
def test_product_list_selector_pages_without_gaps_or_repeats(operator, sort):
    products_create(5, prefix="A", priority=3.0)
    products_create(6, prefix="B", priority=3.0)
    products_create(4, prefix="C", priority=-1.0)
    filters = ProductListFilter(status="unreviewed", sort=sort)
    seen, cursor = [], ""
    while True:
        page = product_list(filters=filters, cursor=cursor, page_size=4)
        seen += [p.external_id for p in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 15
    if sort == "priority":
        assert seen[-4:] == [f"C-{i:04d}" for i in range(4)]


def test_product_list_filters(operator_client, operator):
    reviewed, claimed, plain = products_create(3)
    Product.objects.filter(pk=plain.pk).update(title="Blue linen shirt")
    red = TagFactory(name="Red", aliases=("crimson",))
    ProductTag.objects.create(product=reviewed, tag=red, source="review")
    Product.objects.filter(pk=reviewed.pk).update(review_status="reviewed")
    operator_client.post(f"/products/{claimed.pk}/claim/")

    def listed(query: str) -> list[str]:
        return re.findall(
            r'href="/products/\d+/">([^<]+)</a>', operator_client.get("/products/?" + query).content.decode()
        )

    assert listed("status=reviewed") == [reviewed.external_id]
    assert listed("status=claimed") == [claimed.external_id]
    assert listed("status=all&tag=CRIMSON") == [reviewed.external_id]
    assert listed("status=all&q=LINEN") == [plain.external_id]
    assert listed(f"status=all&q={claimed.external_id}") == [claimed.external_id]
    assert "No tag is called" in operator_client.get("/products/?tag=nope").content.decode()
    assert "out of date" in operator_client.get("/products/?cursor=garbage").content.decode()


def test_product_page_opens_a_product_for_re_review_and_undo(operator_client, operator):
    (product,) = products_create(1)
    TagFactory(name="Red")
    operator_client.post(f"/review/{product.pk}/submit/", {"tags": ["Red"]})
    page = operator_client.get(f"/products/{product.pk}/").content.decode()
    assert "Re-review this product" in page and "Undo the last review" in page

    response = operator_client.post(f"/products/{product.pk}/claim/")
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert product.title in operator_client.get("/review/").content.decode()

    operator_client.post(f"/products/{product.pk}/undo/")
    assert not ProductTag.objects.filter(product=product).exists()


def test_product_page_claim_conflict_is_reported(operator_client, admin_client_):
    (product,) = products_create(1)
    admin_client_.get("/review/")
    response = operator_client.post(f"/products/{product.pk}/claim/", follow=True)
    assert "is being reviewed by adam" in response.content.decode()


def test_operator_cannot_reach_admin_pages(operator_client):
    response = operator_client.get("/admin/", follow=True)
    # Never the admin index: a 403, or Django admin's own refusal (its login form for a non-staff user).
    assert b"Site administration" not in response.content
    assert response.status_code == 403 or b"not authorized to access this page" in response.content
    for name in ("models", "taxonomy"):
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # that area's page is not installed in this checkout
        assert operator_client.get(url).status_code == 403, url


def test_users_without_a_role_get_403():
    get_user_model().objects.create_user("nobody", password="pw-nobody-1")
    client = Client()
    client.login(username="nobody", password="pw-nobody-1")
    assert client.get("/review/").status_code == 403
    assert client.get("/products/").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/review/next/",
        "/review/undo/",
        "/review/{pk}/submit/",
        "/review/{pk}/skip/",
        "/products/{pk}/claim/",
        "/products/{pk}/undo/",
        "/logout/",
    ],
)
def test_every_review_form_enforces_csrf(operator, path):
    (product,) = products_create(1)
    client = Client(enforce_csrf_checks=True)
    client.login(username="olivia", password="operator-pass-123")
    response = client.post(path.format(pk=product.pk), {"tags": []})
    assert response.status_code == 403
    assert b"CSRF" in response.content


def test_login_form_enforces_csrf(operator):
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "olivia", "password": "x"})
    assert response.status_code == 403


def test_nav_links_only_to_installed_pages(operator_client):
    html = operator_client.get("/review/").content.decode()
    assert 'href="/products/"' in html
    try:
        models_url = reverse("models")
    except NoReverseMatch:
        models_url = None
    if models_url:
        assert f'href="{models_url}"' not in html  # admin-only link hidden from operators


@pytest.mark.parametrize("sort", ["priority", "updated"])
def test_text_search_reads_a_bounded_window_and_continues(operator, sort):
    products = products_create(30, prefix="T", priority=1.0)
    wanted = {products[i].pk for i in (2, 11, 12, 25, 29)}
    Product.objects.filter(pk__in=wanted).update(title="Linen shirt")
    filters = ProductListFilter(status="unreviewed", sort=sort, text="LINEN")

    found, cursor, pages, partial = [], "", 0, 0
    while True:
        page = product_list(filters=filters, cursor=cursor, page_size=2, text_window=8)
        found += [p.pk for p in page.rows]
        partial += bool(page.searched)
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
        assert pages < 30

    assert sorted(found) == sorted(wanted) and len(found) == len(set(found))
    assert partial >= 1  # some pages stopped at the window and said so


def test_text_search_finds_an_exact_sku_anywhere(operator):
    products_create(40, prefix="S")
    page = product_list(filters=ProductListFilter(status="all", text="S-0039"), text_window=5)
    assert [p.external_id for p in page.rows][:1] == ["S-0039"]
