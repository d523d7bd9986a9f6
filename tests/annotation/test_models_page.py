"""The models page: promote/rollback ask first, strategies say what they do, the active version is live."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import ModelState, ModelVersion
from annotation.services.queue import queue_strategies

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_export_page_is_in_the_navigation_for_admins_only(client, admin_user, operator):
    client.force_login(admin_user)
    assert f'href="{reverse("exports")}"' in client.get(reverse("models")).content.decode()
    client.force_login(operator)
    assert f'href="{reverse("exports")}"' not in client.get(reverse("review")).content.decode()


def test_every_strategy_carries_its_one_line_description(admin_client):
    body = admin_client.get(reverse("models")).content.decode()
    strategies = queue_strategies()
    assert len(strategies) >= 17
    for name, description in strategies:
        assert description.strip(), f"{name} has no description"
        assert "\n" not in description.strip(), f"{name}: one line"
        assert f"<dt>{name}</dt>" in body
    # The strategy in use is described in view, not only in an option's tooltip.
    assert 'id="strategy-description">' + strategies[0][1].replace("'", "&#x27;") in body


def test_promote_and_rollback_ask_for_confirmation(admin_client):
    old = ModelVersion.objects.create(version="v-old", state=ModelState.READY)
    ModelVersion.objects.create(version="v-active", state=ModelState.READY, is_active=True)
    new = ModelVersion.objects.create(version="v-new", state=ModelState.READY)
    body = admin_client.get(reverse("models")).content.decode()
    assert body.count("return window.confirm(this.dataset.confirm)") == 2
    assert "Roll back to v-old (replacing v-active)?" in body
    assert "Promote v-new (replacing v-active)?" in body
    assert old.pk != new.pk


def test_live_partial_updates_the_active_version_after_a_background_promotion(admin_client):
    ModelVersion.objects.create(version="v1", state=ModelState.READY, is_active=True)
    page = admin_client.get(reverse("models")).content.decode()
    assert page.count('id="active-version"') == 1
    ModelVersion.objects.filter(version="v1").update(is_active=False)
    ModelVersion.objects.create(version="v2", state=ModelState.READY, is_active=True)
    live = admin_client.get(reverse("models-live")).content.decode()
    assert '<strong id="active-version" hx-swap-oob="true">v2</strong>' in live
