from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation.roles import ADMIN, OPERATOR
from annotation.services.users import user_create


@pytest.fixture
def operator(db):
    user, _ = user_create(username="olivia", password="operator-pass-123", role=OPERATOR, validate=False)
    return user


@pytest.fixture
def admin_user(db):
    user, _ = user_create(username="adam", password="admin-pass-123", role=ADMIN, validate=False)
    return user


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
