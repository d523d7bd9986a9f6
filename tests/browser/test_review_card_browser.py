"""The review card's data-loss bugs of issue 15, each reproduced in a real browser (Debian chromium via
Playwright) against a live Django server, and the one-key card.

Each of the five bug tests failed before the fix (noted in its docstring: what the unfixed page did).
"""

from __future__ import annotations

import time

import pytest

from annotation.models import Product, ProductTag, ReviewAction, ReviewEvent
from annotation.roles import OPERATOR
from annotation.services.users import user_create
from annotation.views.review import views as review_views
from tests.browser.conftest import login_by_keyboard
from tests.factories import ModelVersionFactory, TagFactory, products_create, suggestions_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "operator-pass-123"


@pytest.fixture
def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def _operator(name: str = "kim"):
    return user_create(username=name, password=PASSWORD, role=OPERATOR, validate=False)[0]


def _login(page, base: str, username: str = "kim") -> None:
    login_by_keyboard(page, base, username, PASSWORD)


def _card(page):
    return page.locator("#review-card")


def _submits(product: Product) -> list[ReviewEvent]:
    return list(ReviewEvent.objects.filter(product=product, action=ReviewAction.SUBMIT))


def _tag_names(product: Product) -> set[str]:
    return set(ProductTag.objects.filter(product=product).values_list("tag__name", flat=True))


def test_double_enter_saves_once(live_server, new_context, expect, monkeypatch):
    """Unfixed: `a`, Enter, Enter 60 ms apart posted twice and stored two identical submits."""
    real_submit = review_views.review_submit

    def slow_submit(*args, **kwargs):
        # The second Enter must reach the same card: on a quiet machine a submit can answer within 60 ms,
        # and the next card would then (rightly) take the second Enter.
        time.sleep(0.4)
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(review_views, "review_submit", slow_submit)
    _operator()
    red, blue = TagFactory(name="Red"), TagFactory(name="Blue")
    version = ModelVersionFactory(version="v1", is_active=True)
    first, second = (products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 2), ("B", 1)))
    suggestions_create(first, version, {red: 0.9, blue: 0.6})
    suggestions_create(second, version, {red: 0.8})
    page = new_context().new_page()
    _login(page, live_server.url)
    expect(_card(page)).to_have_attribute("data-product", first.external_id)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/submit/" in r.url else None)

    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_timeout(60)
    page.keyboard.press("Enter")
    expect(_card(page)).to_have_attribute("data-product", second.external_id)
    page.wait_for_timeout(500)  # let a second request, if any, land

    assert len(_submits(first)) == 1, posts
    assert _tag_names(first) == {"Red", "Blue"}
    expect(page.locator("[data-stat=today]")).to_have_text("1")
    assert not _submits(second)


def test_a_stale_second_tab_cannot_overwrite_the_first(live_server, new_context, expect):
    """Unfixed: tab A saved 6 tags, then the stale tab B saved 1 tag over them without a warning."""
    _operator()
    tags = [TagFactory(name=f"Tag{i}") for i in range(7)]
    version = ModelVersionFactory(version="v1", is_active=True)
    product, following = (products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 2), ("B", 1)))
    suggestions_create(
        product, version, {tag: 0.9 - i * 0.05 for i, tag in enumerate(tags[:6])} | {tags[6]: 0.2}
    )
    context = new_context()
    tab_a, tab_b = context.new_page(), context.new_page()
    _login(tab_a, live_server.url)
    tab_b.goto(f"{live_server.url}/review/")
    expect(_card(tab_a)).to_have_attribute("data-product", product.external_id)
    expect(_card(tab_b)).to_have_attribute("data-product", product.external_id)

    tab_a.keyboard.press("a")  # accept all >= 0.50: six tags
    tab_a.keyboard.press("Enter")
    expect(_card(tab_a)).to_have_attribute("data-product", following.external_id)
    assert len(_tag_names(product)) == 6

    tab_b.bring_to_front()
    tab_b.keyboard.press("1")  # the stale tab changes one chip and saves
    tab_b.keyboard.press("Enter")
    expect(_card(tab_b)).to_contain_text("changed since you opened it")
    expect(_card(tab_b)).to_have_attribute("data-product", following.external_id)  # the fresh card
    assert len(_tag_names(product)) == 6
    assert len(_submits(product)) == 1


def test_back_then_forward_never_re_reviews_from_a_cached_card(live_server, new_context, expect):
    """Unfixed: Back showed the cached card of a product already reviewed, and Enter reviewed it again."""
    _operator()
    first, second, third = (
        products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 3), ("B", 2), ("C", 1))
    )
    page = new_context().new_page()
    _login(page, live_server.url)
    expect(_card(page)).to_have_attribute("data-product", first.external_id)
    page.keyboard.press("Enter")  # save A (no suggestions: zero tags needs no confirmation)
    expect(_card(page)).to_have_attribute("data-product", second.external_id)

    page.goto(f"{live_server.url}/products/")
    page.go_back()
    expect(_card(page)).to_be_visible()
    page.keyboard.press("Enter")  # whatever card Back shows: submit it
    # The next card arrives only after the submit answered (a fixed sleep raced a loaded machine).
    expect(_card(page)).to_have_attribute("data-product", third.external_id)

    assert len(_submits(first)) == 1
    assert len(_submits(second)) == 1  # Back shows the card the operator holds now


def test_bare_enter_does_not_save_zero_tags_without_confirmation(live_server, new_context, expect, settings):
    """Unfixed: a bare Enter (and Enter in the empty add-tag box) saved the product with 0 tags and all
    suggestions rejected, without asking."""
    settings.REVIEW_PRECHECK_SELECTED = False  # nothing starts checked: a bare Enter sends no tag
    _operator()
    red, blue, green = TagFactory(name="Red"), TagFactory(name="Blue"), TagFactory(name="Green")
    version = ModelVersionFactory(version="v1", is_active=True)
    product, following = (products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 2), ("B", 1)))
    suggestions_create(product, version, {red: 0.9, blue: 0.7, green: 0.01})
    page = new_context().new_page()
    _login(page, live_server.url)
    expect(_card(page)).to_have_attribute("data-product", product.external_id)

    page.keyboard.press("Enter")
    expect(page.locator(".confirm-no-tags")).to_contain_text("the model suggested Blue, Red")
    page.keyboard.press("/")
    page.keyboard.press("Enter")  # Enter in the empty add-tag box: still only the confirm step
    expect(page.locator(".confirm-no-tags")).to_be_visible()
    page.wait_for_timeout(300)
    assert not _submits(product)

    page.keyboard.press("n")  # the explicit second confirmation: no tag applies
    expect(_card(page)).to_have_attribute("data-product", following.external_id)
    (event,) = _submits(product)
    assert event.final_tags == []
    assert event.rejected == ["Blue", "Red"]  # Green was behind "more" (score < 0.05): not rejected


def test_focus_leaves_the_add_tag_box_after_a_tag_is_added(live_server, new_context, expect):
    """Unfixed: focus stayed in the add-tag box, so the next `a` was typed into it."""
    _operator()
    red, _cotton = TagFactory(name="Red"), TagFactory(name="Cotton")
    version = ModelVersionFactory(version="v1", is_active=True)
    product = products_create(1)[0]
    suggestions_create(product, version, {red: 0.4})
    page = new_context().new_page()
    _login(page, live_server.url)

    page.keyboard.press("/")
    page.keyboard.type("cotton")
    page.keyboard.press("Enter")
    expect(page.locator("#chips .chip.added")).to_contain_text("Cotton")
    page.keyboard.press("a")  # a shortcut again (accept >= threshold), never text in the box
    expect(page.locator("#add-tag")).to_have_value("")
    assert page.evaluate("document.activeElement.id") != "add-tag"
    page.keyboard.press("Enter")
    expect(_card(page)).to_contain_text("Nothing to review right now")
    (event,) = _submits(product)
    assert event.added == ["Cotton"]


def test_a_right_card_takes_one_key_and_every_shown_chip_has_a_key(live_server, new_context, expect):
    _operator()
    tags = [TagFactory(name=f"T{i:02d}") for i in range(25)]
    version = ModelVersionFactory(version="v1", is_active=True)
    product, following = (products_create(1, prefix=p, priority=prio)[0] for p, prio in (("A", 2), ("B", 1)))
    # Two selected, twelve unselected above 0.05 (ten shown, two behind "more"), eleven below 0.05.
    scores = {tags[0]: 0.95, tags[1]: 0.8} | {tags[i]: 0.4 - i * 0.01 for i in range(2, 14)}
    scores |= {tags[i]: 0.01 for i in range(14, 25)}
    suggestions_create(product, version, scores)
    suggestions_create(following, version, {tags[0]: 0.9})
    page = new_context().new_page()
    _login(page, live_server.url)

    visible = page.locator("#chips .chip")
    expect(visible).to_have_count(12)
    expect(page.locator("#more-chips .chip")).to_have_count(13)
    expect(page.locator("#chips .chip input[type=checkbox]:checked")).to_have_count(2)  # the model's picks
    keys = visible.locator(".chip-key").all_text_contents()
    assert keys == list("1234567890qw")

    page.keyboard.press("Enter")  # the model got it right: one key
    expect(_card(page)).to_have_attribute("data-product", following.external_id)
    (event,) = _submits(product)
    assert event.final_tags == ["T00", "T01"]
    assert event.edited is False and event.model_version_id == version.pk
    assert len(event.rejected) == 10  # only the shown, unchecked chips

    page.keyboard.press("w")  # an extra key reaches chip 12... here there is one chip: nothing happens
    page.keyboard.press("1")  # un-check the pick, then check it again: unchanged in the end
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(_card(page)).to_contain_text("Nothing to review right now")
    (event,) = _submits(following)
    assert event.final_tags == ["T00"] and event.edited is False


def test_letter_keys_toggle_chips_beyond_the_tenth_and_more_counts_once_opened(
    live_server, new_context, expect
):
    _operator()
    tags = [TagFactory(name=f"T{i:02d}") for i in range(14)]
    version = ModelVersionFactory(version="v1", is_active=True)
    product = products_create(1)[0]
    suggestions_create(product, version, {tags[i]: 0.45 - i * 0.01 for i in range(14)})  # none selected
    page = new_context().new_page()
    _login(page, live_server.url)
    expect(page.locator("#chips .chip")).to_have_count(10)

    page.locator("#more-chips summary").click()  # open "more": its four chips get keys and count as shown
    expect(page.locator("#more-chips .chip-key").first).to_have_text("q")
    page.locator("#review-card").focus()
    page.keyboard.press("q")  # chip 11
    page.keyboard.press("Enter")
    expect(_card(page)).to_contain_text("Nothing to review right now")
    (event,) = _submits(product)
    assert event.final_tags == ["T10"]
    assert len(event.rejected) == 13
