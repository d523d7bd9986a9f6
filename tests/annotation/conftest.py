from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.annotation.training_support import FAST_TAGGER, memory_broker
from tests.factories import AdminFactory, OperatorFactory


@pytest.fixture
def operator(db):
    return OperatorFactory(username="olivia", password="operator-pass-123")


@pytest.fixture
def admin_user(db):
    return AdminFactory(username="adam", password="admin-pass-123")


@pytest.fixture
def operator_api(operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def in_memory_broker():
    """Tasks this process sends go to kombu's in-memory transport, not the shared broker (see memory_broker)."""
    with memory_broker():
        yield


@pytest.fixture
def fast_tagger(settings):
    """The quickest tagger, promoted automatically: for tests about the learning loop, not the tagger."""
    settings.TAGSTUDIO_TAGGER = FAST_TAGGER
    settings.MODEL_PROMOTION = "auto"
