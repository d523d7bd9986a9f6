from __future__ import annotations

import pytest
from rest_framework.test import APIClient

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
