"""Django admin for tags, model versions and jobs: searchable, read-only where services own the rules."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotation.models import ImportJob, Setting, Tag, TrainingJob
from annotation.roles import roles_ensure
from annotation.services.tags import tag_alias_add, tag_create
from tests.factories import AdminFactory, ModelVersionFactory, OperatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "root-pass-123")
    client.force_login(user)
    return client


def test_changelists_load_and_search_tags_by_alias(staff_client):
    tee = tag_create(name="T-Shirt")
    tag_alias_add(tag=tee, name="tee")
    tag_create(name="Dress")
    ModelVersionFactory(version="v1", metrics={"micro_f1": 0.7, "p@1": 0.8})
    ImportJob.objects.create(source_name="a.jsonl", file_path="/tmp/a.jsonl", file_format="jsonl")
    TrainingJob.objects.create(trigger="manual")
    Setting.objects.create(key="hierarchy_closure", value=True)
    for model in (
        "tag",
        "tagalias",
        "modelversion",
        "importjob",
        "trainingjob",
        "exportjob",
        "suggestionrefresh",
        "setting",
    ):
        response = staff_client.get(reverse(f"admin:annotation_{model}_changelist"))
        assert response.status_code == 200, model
    found = staff_client.get(reverse("admin:annotation_tag_changelist"), {"q": "tee"}).content.decode()
    assert "T-Shirt" in found and "Dress" not in found
    assert reverse("taxonomy-tag", args=[tee.pk]) in found
    assert "0.7" in staff_client.get(reverse("admin:annotation_modelversion_changelist")).content.decode()
    # The tag picker of the alias admin is an autocomplete endpoint, not a <select> of every tag.
    response = staff_client.get(
        reverse("admin:autocomplete"),
        {"term": "dre", "app_label": "annotation", "model_name": "tagalias", "field_name": "tag"},
    )
    assert [r["text"] for r in response.json()["results"]] == ["Dress"]


def test_tag_admin_edits_through_services_only(staff_client):
    tag = tag_create(name="Vintage")
    assert staff_client.get(reverse("admin:annotation_tag_add")).status_code == 403
    assert (
        staff_client.post(reverse("admin:annotation_tag_delete", args=[tag.pk]), {"post": "yes"}).status_code
        == 403
    )
    # The name is read-only here (renames fold and keep the old name as an alias on the taxonomy page).
    staff_client.post(
        reverse("admin:annotation_tag_change", args=[tag.pk]), {"name": "Other", "description": "d"}
    )
    tag.refresh_from_db()
    assert tag.name == "Vintage"
    response = staff_client.post(
        reverse("admin:annotation_tag_changelist"),
        {"action": "deactivate_tags", "_selected_action": [tag.pk]},
    )
    assert response.status_code == 302
    assert not Tag.objects.get(pk=tag.pk).is_active
    staff_client.post(
        reverse("admin:annotation_tag_changelist"), {"action": "activate_tags", "_selected_action": [tag.pk]}
    )
    assert Tag.objects.get(pk=tag.pk).is_active


ADMIN_SITE_MODELS = (
    "tag",
    "tagalias",
    "modelversion",
    "importjob",
    "trainingjob",
    "exportjob",
    "suggestionrefresh",
    "setting",
)


def test_role_admin_sees_the_tagstudio_models_in_the_admin_site(client):
    """The admin `make run` creates (a role admin, not a superuser) can use /admin/ (issue 15)."""
    admin_user = AdminFactory()
    assert not admin_user.is_superuser
    tag_create(name="Dress")
    client.force_login(admin_user)
    index = client.get("/admin/")
    assert index.status_code == 200
    body = index.content.decode()
    assert "have permission to view or edit anything" not in body
    for model in ADMIN_SITE_MODELS:
        url = reverse(f"admin:annotation_{model}_changelist")
        assert url in body, f"{model} is not listed on /admin/"
        assert client.get(url).status_code == 200, model
    # Tags keep their service-owned rules: the page opens, names stay read-only, no add or delete.
    tag = Tag.objects.get(name="Dress")
    assert client.get(reverse("admin:annotation_tag_change", args=[tag.pk])).status_code == 200
    assert client.get(reverse("admin:annotation_tag_add")).status_code == 403
    assert client.get(reverse("admin:annotation_tag_delete", args=[tag.pk])).status_code == 403
    # Accounts stay out of the admin site: users are managed with create_user and the users API.
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_roles_ensure_makes_existing_role_admins_staff():
    admin_user = AdminFactory()
    get_user_model().objects.filter(pk=admin_user.pk).update(is_staff=False)
    roles_ensure()
    admin_user.refresh_from_db()
    assert admin_user.is_staff
    assert not OperatorFactory().is_staff
