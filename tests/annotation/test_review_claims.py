"""Claim tokens, the no-tag confirmation and the one-key card (issue 15; issue 14 point 10), against the
real PostgreSQL: services, the REST API and the HTML submit."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from annotation.models import Product, ProductTag, ReviewAction, ReviewEvent, ReviewStatus
from annotation.roles import OPERATOR
from annotation.selectors.review import CARD_MAX_UNSELECTED, CHIP_KEYS, review_card
from annotation.services.reviews import (
    ClaimConflict,
    ClaimStale,
    NoTagsUnconfirmed,
    review_claim,
    review_claim_next,
    review_release,
    review_skip,
    review_submit,
)
from annotation.services.users import user_create
from tests.factories import ModelVersionFactory, TagFactory, products_create, suggestions_create


def _submits(product: Product) -> int:
    return ReviewEvent.objects.filter(product=product, action=ReviewAction.SUBMIT).count()


def _suggested_product(*scores: float) -> tuple[Product, list]:
    (product,) = products_create(1)
    tags = [TagFactory(name=f"T{i}") for i in range(len(scores))]
    suggestions_create(
        product, ModelVersionFactory(version="v1", is_active=True), dict(zip(tags, scores, strict=True))
    )
    return product, tags


# --- Services --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_new_claim_gets_a_token_and_a_renewal_keeps_it(operator, admin_user):
    first, second = products_create(2)
    claimed = review_claim_next(user=operator)
    token = claimed.claim_token
    assert token is not None
    assert review_claim_next(user=operator).claim_token == token  # a second tab, a repeated next
    assert review_card(product=claimed).claim_token == str(token)
    review_release(product=claimed, user=operator)
    assert Product.objects.get(pk=claimed.pk).claim_token is None
    again = review_claim(product=claimed, user=operator)
    assert again.claim_token not in (None, token)


@pytest.mark.django_db
def test_a_repeated_submit_returns_the_first_result_and_stores_nothing_more(operator):
    product, _ = _suggested_product(0.9, 0.2)
    claim = review_claim_next(user=operator).claim_token

    first = review_submit(product=product, user=operator, tags=["T0"], claim=claim)
    again = review_submit(product=product, user=operator, tags=[" t0 "], claim=str(claim))

    assert again.pk == first.pk and again.replayed and not first.replayed
    assert (again.final_tags, again.product.review_status) == (["T0"], ReviewStatus.REVIEWED)
    assert _submits(product) == 1
    assert ReviewEvent.objects.get(pk=first.pk).claim_token == claim


@pytest.mark.django_db
def test_a_stale_token_is_refused_and_changes_nothing(operator):
    product, _ = _suggested_product(0.9, 0.8)
    claim = review_claim_next(user=operator).claim_token
    review_submit(product=product, user=operator, tags=["T0", "T1"], claim=claim)

    with pytest.raises(ClaimStale, match="changed since you opened it"):
        review_submit(product=product, user=operator, tags=["T0"], claim=claim)  # the other tab
    with pytest.raises(ClaimStale):
        review_submit(product=product, user=operator, tags=["T0"], claim=uuid.uuid4())
    assert set(ProductTag.objects.filter(product=product).values_list("tag__name", flat=True)) == {"T0", "T1"}
    assert _submits(product) == 1


@pytest.mark.django_db
def test_a_skip_or_someone_else_s_claim_makes_the_card_stale(operator, admin_user):
    product, _ = _suggested_product(0.9)
    claim = review_claim_next(user=operator).claim_token
    review_skip(product=product, user=operator)
    with pytest.raises(ClaimStale):
        review_submit(product=product, user=operator, tags=["T0"], claim=claim)

    review_claim(product=product, user=admin_user)
    theirs = Product.objects.get(pk=product.pk).claim_token
    with pytest.raises(ClaimStale):
        review_submit(product=product, user=operator, tags=["T0"], claim=claim)
    with pytest.raises(ClaimConflict):  # the holder's own token, sent by someone else
        review_submit(product=product, user=operator, tags=["T0"], claim=theirs)


@pytest.mark.django_db
def test_without_a_token_the_submit_behaves_as_before(operator):
    product, _ = _suggested_product(0.9, 0.7)
    review_claim_next(user=operator)
    event = review_submit(product=product, user=operator, tags=[])  # no confirmation asked
    assert event.final_tags == [] and event.rejected == ["T0", "T1"] and event.claim_token is None
    again = review_submit(product=product, user=operator, tags=[])
    assert again.pk != event.pk and _submits(product) == 2  # the old contract: each call is a review


@pytest.mark.django_db
def test_zero_tags_need_a_confirmation_when_the_model_selected_some(operator):
    product, _ = _suggested_product(0.9, 0.6, 0.2)
    claim = review_claim_next(user=operator).claim_token

    with pytest.raises(NoTagsUnconfirmed) as refused:
        review_submit(product=product, user=operator, tags=[], claim=claim)
    assert refused.value.suggested == ["T0", "T1"]
    with pytest.raises(NoTagsUnconfirmed):
        review_submit(product=product, user=operator, tags=[], no_tag_applies=False)
    assert _submits(product) == 0

    event = review_submit(product=product, user=operator, tags=[], claim=claim, no_tag_applies=True)
    assert event.final_tags == [] and event.edited is True


@pytest.mark.django_db
def test_zero_tags_need_no_confirmation_when_the_model_selected_none(operator):
    product, _ = _suggested_product(0.3, 0.2)
    claim = review_claim_next(user=operator).claim_token
    event = review_submit(product=product, user=operator, tags=[], claim=claim)
    assert event.final_tags == [] and event.edited is False  # the model's empty selection, accepted


@pytest.mark.django_db
def test_the_audit_records_accepted_unchanged_or_edited_and_only_visible_rejections(operator):
    product, tags = _suggested_product(0.9, 0.4, 0.3)
    claim = review_claim_next(user=operator).claim_token
    event = review_submit(
        product=product,
        user=operator,
        tags=["T0"],
        claim=claim,
        visible_tag_ids=[tags[0].pk, tags[1].pk],
        prechecked=True,
    )
    assert (event.edited, event.prechecked, event.model_version.version) == (False, True, "v1")
    assert event.rejected == ["T1"]  # T2 was behind "more": not shown, not rejected
    assert [row["visible"] for row in event.shown] == [True, True, False]

    (other,) = products_create(1, prefix="O")
    suggestions_create(other, event.model_version, {tags[0]: 0.9, tags[1]: 0.8})
    claim = review_claim(product=other, user=operator).claim_token
    edited = review_submit(product=other, user=operator, tags=["T0"], claim=claim, prechecked=True)
    assert edited.edited is True and edited.rejected == ["T1"]  # unchecked a pick


@pytest.mark.django_db
def test_the_database_refuses_a_second_event_with_the_same_claim_token(operator):
    (product,) = products_create(1)
    token = uuid.uuid4()
    ReviewEvent.objects.create(product=product, user=operator, action=ReviewAction.SUBMIT, claim_token=token)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewEvent.objects.create(
            product=product, user=operator, action=ReviewAction.SUBMIT, claim_token=token
        )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simultaneous_identical_submits_store_one_event():
    """Issue 14 point 10: the same operator sends the same submit several times at once (threads, each
    with its own PostgreSQL connection). One event is stored; every caller gets that event."""
    operator = user_create(username="olivia", password="x", role=OPERATOR, validate=False)[0]
    product, _ = _suggested_product(0.9, 0.8)
    claim = review_claim_next(user=operator).claim_token
    callers = 8
    start = threading.Barrier(callers)
    results: list[int] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            start.wait()
            results.append(review_submit(product=product, user=operator, tags=["T0", "T1"], claim=claim).pk)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert len(results) == callers and len(set(results)) == 1
    assert _submits(product) == 1
    assert ProductTag.objects.filter(product=product).count() == 2


# --- Selectors -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_card_pre_checks_the_model_s_picks_and_hides_weak_candidates(settings):
    scores = [0.9, 0.7] + [0.45 - i * 0.02 for i in range(CARD_MAX_UNSELECTED + 3)] + [0.04, 0.01]
    product, _ = _suggested_product(*scores)
    card = review_card(product=product)
    assert [c.checked for c in card.visible_chips[:3]] == [True, True, False]
    assert len(card.visible_chips) == 2 + CARD_MAX_UNSELECTED
    assert len(card.more_chips) == 3 + 2
    assert len(CHIP_KEYS) >= len(card.visible_chips)

    settings.REVIEW_PRECHECK_SELECTED = False
    assert not any(c.checked for c in review_card(product=product).chips)


# --- REST ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_submit_with_the_card_s_claim_is_idempotent(operator_api, settings):
    product, _ = _suggested_product(0.9, 0.3)
    card = operator_api.post("/api/v1/review/next/")
    assert card["Cache-Control"] and "no-store" in card["Cache-Control"]
    claim = card.json()["claim"]
    url = f"/api/v1/products/{product.external_id}/review/"

    first = operator_api.post(url, {"tags": ["T0"], "claim": claim}, format="json")
    again = operator_api.post(url, {"tags": ["T0"], "claim": claim}, format="json")

    assert first.status_code == again.status_code == 200, first.content
    assert first.json() == again.json()
    assert first.json()["edited"] is False
    assert "no-store" in first["Cache-Control"]
    assert _submits(product) == 1


@pytest.mark.django_db
def test_api_stale_claim_answers_409_in_the_error_shape(operator_api):
    product, _ = _suggested_product(0.9, 0.8)
    claim = operator_api.post("/api/v1/review/next/").json()["claim"]
    url = f"/api/v1/products/{product.external_id}/review/"
    assert operator_api.post(url, {"tags": ["T0", "T1"], "claim": claim}, format="json").status_code == 200

    response = operator_api.post(url, {"tags": ["T0"], "claim": claim}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "stale_claim" and "changed since you opened it" in body["detail"]
    assert "claim" in body["fields"]
    assert _submits(product) == 1


@pytest.mark.django_db
def test_api_empty_tags_with_a_claim_need_no_tag_applies(operator_api):
    product, _ = _suggested_product(0.9)
    claim = operator_api.post("/api/v1/review/next/").json()["claim"]
    url = f"/api/v1/products/{product.external_id}/review/"

    refused = operator_api.post(url, {"tags": [], "claim": claim}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "no_tags_unconfirmed"
    assert refused.json()["fields"] == {"no_tag_applies": ["T0"]}

    saved = operator_api.post(url, {"tags": [], "claim": claim, "no_tag_applies": True}, format="json")
    assert saved.status_code == 200 and saved.json()["tags"] == []


@pytest.mark.django_db
def test_api_a_malformed_claim_is_invalid_input(operator_api):
    product, _ = _suggested_product(0.9)
    operator_api.post("/api/v1/review/next/")
    response = operator_api.post(
        f"/api/v1/products/{product.external_id}/review/", {"tags": ["T0"], "claim": "x"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid"


# --- HTML ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_review_pages_are_never_cached_and_a_repeat_post_saves_once(client, operator):
    client.force_login(operator)
    product, tags = _suggested_product(0.9, 0.3)
    page = client.get("/review/")
    assert "no-store" in page["Cache-Control"]
    claim = Product.objects.get(pk=product.pk).claim_token
    assert str(claim) in page.content.decode()
    form = {"tags": ["T0"], "claim": str(claim), "shown_tags": [tags[0].pk, tags[1].pk], "prechecked": "1"}

    first = client.post(f"/review/{product.pk}/submit/", form, HTTP_HX_REQUEST="true")
    again = client.post(f"/review/{product.pk}/submit/", form, HTTP_HX_REQUEST="true")

    assert first.status_code == again.status_code == 200
    assert "no-store" in again["Cache-Control"]
    assert "Already saved" in again.content.decode()
    assert _submits(product) == 1

    stale = client.post(f"/review/{product.pk}/submit/", {**form, "tags": []}, HTTP_HX_REQUEST="true")
    assert stale.status_code == 409 and "changed since you opened it" in stale.content.decode()


@pytest.mark.django_db
def test_html_zero_tags_show_the_confirm_step(client, operator):
    client.force_login(operator)
    product, _ = _suggested_product(0.9)
    client.get("/review/")
    claim = str(Product.objects.get(pk=product.pk).claim_token)

    step = client.post(f"/review/{product.pk}/submit/", {"claim": claim}, HTTP_HX_REQUEST="true")
    assert step.status_code == 422 and 'id="no-tag-button"' in step.content.decode()
    assert _submits(product) == 0

    saved = client.post(
        f"/review/{product.pk}/submit/", {"claim": claim, "no_tag_applies": "1"}, HTTP_HX_REQUEST="true"
    )
    assert saved.status_code == 200 and _submits(product) == 1


@pytest.mark.django_db
def test_a_stale_card_cannot_skip(client, operator):
    client.force_login(operator)
    (product,) = products_create(1)
    client.get("/review/")
    claim = str(Product.objects.get(pk=product.pk).claim_token)
    assert (
        client.post(f"/review/{product.pk}/submit/", {"claim": claim}, HTTP_HX_REQUEST="true").status_code
        == 200
    )

    stale = client.post(f"/review/{product.pk}/skip/", {"claim": claim}, HTTP_HX_REQUEST="true")

    assert stale.status_code == 409 and "changed since you opened it" in stale.content.decode()
    assert not ReviewEvent.objects.filter(action=ReviewAction.SKIP).exists()
    with pytest.raises(ClaimStale):
        review_skip(product=product, user=operator, claim="not-a-token")
