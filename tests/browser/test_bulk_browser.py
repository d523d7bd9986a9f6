"""The candidate grid in a real browser (Debian chromium via Playwright) against a live Django server: an
operator clears a tag by keyboard, and two operators bulk-accept overlapping selections at the same time."""

from __future__ import annotations

import pytest

from annotation.models import BulkAction, Product, ProductTag, ReviewAction, ReviewEvent, Suggestion
from annotation.services.reviews import review_claim, review_release
from tests.browser.conftest import login_by_keyboard
from tests.factories import ModelVersionFactory, OperatorFactory, TagFactory, products_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "operator-pass-123"


@pytest.fixture
def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def _catalog(count: int = 20):
    """``count`` products; the active model scores tag "navy" (count - i) / count for product i, so the
    grid's first row (highest score) is NV-0000."""
    version = ModelVersionFactory(version="v1", is_active=True)
    navy = TagFactory(name="navy")
    products = products_create(count, prefix="NV")
    Suggestion.objects.bulk_create(
        Suggestion(
            product=p, tag=navy, model_version=version, score=round((count - i) / count, 4), selected=True
        )
        for i, p in enumerate(products)
    )
    return navy, products


def _live_decisions(navy) -> dict[str, int]:
    """External id -> how many live (not undone) bulk decisions on navy it has."""
    counts: dict[str, int] = {}
    for sku in ReviewEvent.objects.filter(
        tag=navy, action=ReviewAction.BULK, reverted_by__isnull=True
    ).values_list("product__external_id", flat=True):
        counts[sku] = counts.get(sku, 0) + 1
    return counts


def test_operator_clears_a_tag_by_keyboard_select_above_a_score_accept_and_undo(
    live_server, new_context, expect
):
    OperatorFactory(username="mia", password=PASSWORD)
    navy, _ = _catalog()
    page = new_context().new_page()
    login_by_keyboard(page, live_server.url, "mia", PASSWORD)
    page.goto(f"{live_server.url}/tags/{navy.pk}/candidates/")
    expect(page.locator("#candidates tbody tr").first).to_have_attribute("data-sku", "NV-0000")

    # j moves, x selects, shift+x selects the range from the last toggled row: the top three.
    page.keyboard.press("j")
    expect(page.locator("tr.current")).to_have_attribute("data-sku", "NV-0000")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("Shift+X")
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    page.keyboard.press("k")
    expect(page.locator("tr.current")).to_have_attribute("data-sku", "NV-0001")
    page.keyboard.press("a")
    expect(page.locator(".messages")).to_contain_text("Accepted navy: 3 products done")
    assert set(_live_decisions(navy)) == {"NV-0000", "NV-0001", "NV-0002"}
    # Unreviewed for navy is the grid's default view: the decided products left it.
    expect(page.locator("#candidates tbody tr").first).to_have_attribute("data-sku", "NV-0003")

    # "Select all with score >= 0.8 on this filter": the count shows before anything runs.
    page.locator("#above-score").fill("0.8")
    page.locator("#above-score").press("Enter")
    expect(page.locator("#above-count")).to_have_text("2 products match")  # 0.85 and 0.80 are left
    assert len(_live_decisions(navy)) == 3
    page.locator("#accept-above").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text("Accepted navy: 2 products done")
    assert set(_live_decisions(navy)) == {"NV-0000", "NV-0001", "NV-0002", "NV-0003", "NV-0004"}
    assert ProductTag.objects.filter(tag=navy).count() == 5

    # u undoes the latest bulk action as one: both products of the "above 0.8" accept, nothing else.
    page.locator("body").focus()
    page.keyboard.press("u")
    expect(page.locator(".messages")).to_contain_text("products done")
    expect(page.locator(".messages")).to_contain_text("Undid bulk action")
    assert set(_live_decisions(navy)) == {"NV-0000", "NV-0001", "NV-0002"}
    assert set(ProductTag.objects.filter(tag=navy).values_list("product__external_id", flat=True)) == {
        "NV-0000",
        "NV-0001",
        "NV-0002",
    }
    expect(page.locator("#candidates tbody tr").first).to_have_attribute("data-sku", "NV-0003")


def test_two_operators_bulk_accept_overlapping_selections_at_once(live_server, new_context, expect):
    OperatorFactory(username="ana", password=PASSWORD)
    OperatorFactory(username="ben", password=PASSWORD)
    holder = OperatorFactory(username="cleo", password=PASSWORD)
    navy, products = _catalog(20)
    review_claim(product=products[5], user=holder)  # NV-0005 is on cleo's review card: hands off

    pages = {}
    for name in ("ana", "ben"):
        page = new_context().new_page()
        login_by_keyboard(page, live_server.url, name, PASSWORD)
        page.goto(f"{live_server.url}/tags/{navy.pk}/candidates/")
        expect(page.locator("#candidates tbody tr")).to_have_count(20)
        pages[name] = page
    # Signing in opens the review page, which claimed a product for each of them: give those back, so the
    # only claim left is cleo's (one's own claim never stops one's bulk action; the other's would).
    for product in Product.objects.filter(claimed_by__username__in=["ana", "ben"]):
        review_release(product=product, user=product.claimed_by)

    def pick(page, first: int, last: int) -> None:
        boxes = page.locator("#candidates tbody tr input.pick")
        boxes.nth(first).click()
        boxes.nth(last).click(modifiers=["Shift"])
        expect(page.locator("#selection-count")).to_have_text(f"{last - first + 1} selected")

    pick(pages["ana"], 0, 11)  # NV-0000 .. NV-0011
    pick(pages["ben"], 6, 15)  # NV-0006 .. NV-0015: six products overlap
    # Both press accept without waiting for the other's answer.
    for page in pages.values():
        page.evaluate("document.getElementById('accept-selected').click()")
    for page in pages.values():
        expect(page.locator(".messages")).to_contain_text("Accepted navy")

    union = {f"NV-{i:04d}" for i in range(16)}
    decided = _live_decisions(navy)
    assert set(decided) == union - {"NV-0005"}  # nothing lost; the held product untouched
    assert all(count == 1 for count in decided.values()), decided  # each product decided once
    assert set(ProductTag.objects.filter(tag=navy).values_list("product__external_id", flat=True)) == (
        union - {"NV-0005"}
    )
    actions = list(BulkAction.objects.order_by("id"))
    assert len(actions) == 2
    assert sum(a.done for a in actions) == 15
    skipped = {item["external_id"]: item["reason"] for a in actions for item in a.skipped_items}
    assert skipped["NV-0005"].startswith("being reviewed by cleo")
    overlap = {f"NV-{i:04d}" for i in range(6, 12)}
    # Whoever came second found the overlap already accepted by the first.
    assert {sku for sku, why in skipped.items() if why.startswith("already accepted (bulk action")} == overlap
    assert Product.objects.get(external_id="NV-0005").claimed_by == holder
