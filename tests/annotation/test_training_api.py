"""The learning loop's HTTP surface: /api/v1/models/, training jobs, activation, the strategy, /models/."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import JobStatus, ModelState, ModelVersion, Setting, TrainingJob, TrainingTrigger
from annotation.services.queue import STRATEGY_SETTING
from tests.factories import ModelVersionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_memory_broker")]


def test_train_endpoint_returns_202_with_the_job_and_is_debounced(admin_api):
    response = admin_api.post("/api/v1/models/train/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["created"] is True and body["status"] == "queued"
    job = TrainingJob.objects.get(id=body["job_id"])
    assert job.trigger == TrainingTrigger.API
    again = admin_api.post("/api/v1/models/train/").json()
    assert again["job_id"] == body["job_id"] and again["created"] is False

    detail = admin_api.get(body["url"])
    assert detail.status_code == 200
    assert {"status", "progress", "model_version", "error"} <= set(detail.json())
    assert detail.json()["status"] == "queued"


def test_operators_cannot_train_or_activate_but_can_read(operator_api):
    assert operator_api.post("/api/v1/models/train/").status_code == 403
    version = ModelVersionFactory(version="v-x", artifact_path="/nowhere")
    assert operator_api.post(f"/api/v1/models/{version.id}/activate/").status_code == 403
    assert operator_api.get("/api/v1/models/").status_code == 200
    assert not TrainingJob.objects.exists()


def test_anonymous_requests_are_refused():
    client = APIClient()
    assert client.get("/api/v1/models/").status_code in (401, 403)
    assert client.post("/api/v1/models/train/").status_code in (401, 403)


def test_models_list_has_metrics_and_active_flag(admin_api):
    old = ModelVersionFactory(version="v1", metrics={"micro_f1": 0.5, "p@1": 0.6, "per_tag": {"a": {}}})
    ModelVersionFactory(version="v2", state=ModelState.FAILED)
    ModelVersion.objects.filter(id=old.id).update(is_active=True)
    response = admin_api.get("/api/v1/models/")
    assert response.status_code == 200
    results = {row["version"]: row for row in response.json()["results"]}
    assert results["v1"]["is_active"] is True and results["v2"]["is_active"] is False
    assert results["v1"]["metrics"] == {"micro_f1": 0.5, "p@1": 0.6}  # per-tag only in the detail
    detail = admin_api.get(f"/api/v1/models/{old.id}/").json()
    assert "per_tag" in detail["metrics"] and "config" in detail


def test_activating_a_version_that_is_not_ready_is_a_conflict(admin_api):
    failed = ModelVersionFactory(version="v-failed", state=ModelState.FAILED)
    response = admin_api.post(f"/api/v1/models/{failed.id}/activate/")
    assert response.status_code == 409
    assert response.json()["error"] == "conflict" and "only a ready version" in response.json()["detail"]
    assert admin_api.post("/api/v1/models/999999/activate/").status_code == 404


def test_activating_a_ready_version_without_its_artifact_is_a_conflict(admin_api):
    version = ModelVersionFactory(version="v-gone", artifact_path="/nowhere")
    response = admin_api.post(f"/api/v1/models/{version.id}/activate/")
    assert response.status_code == 409 and "no artifact" in response.json()["detail"]
    assert not ModelVersion.objects.filter(is_active=True).exists()


def test_training_job_detail_404_for_unknown_id(admin_api):
    assert admin_api.get("/api/v1/training-jobs/424242/").status_code == 404


def test_suggestion_refresh_404_before_any(admin_api):
    response = admin_api.get("/api/v1/suggestion-refreshes/latest/")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_queue_strategy_get_and_put(admin_api, operator_api):
    from mlcore.selection import DEFAULT_STRATEGY, STRATEGIES

    body = operator_api.get("/api/v1/queue/strategy/").json()
    assert body["strategy"] == DEFAULT_STRATEGY
    assert {c["name"] for c in body["choices"]} == set(STRATEGIES)
    assert (
        operator_api.put("/api/v1/queue/strategy/", {"strategy": "random"}, format="json").status_code == 403
    )
    response = admin_api.put("/api/v1/queue/strategy/", {"strategy": "random"}, format="json")
    assert response.status_code == 200 and response.json()["strategy"] == "random"
    assert Setting.objects.get(key=STRATEGY_SETTING).value == "random"
    bad = admin_api.put("/api/v1/queue/strategy/", {"strategy": "psychic"}, format="json")
    assert bad.status_code == 400 and "strategy" in bad.json()["fields"]


# --- the models page ---------------------------------------------------------------------------------


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_models_page_is_for_admins_only(admin_user, operator):
    assert _login(operator).get(reverse("models")).status_code == 403
    assert Client().get(reverse("models")).status_code == 302  # to the login page
    response = _login(admin_user).get(reverse("models"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="retrain"' in html and 'id="strategy-select"' in html
    assert 'hx-get="/models/live/"' in html and 'hx-trigger="every 2s"' in html


def test_models_page_shows_versions_job_progress_and_strategy(admin_user):
    from mlcore.selection import DEFAULT_STRATEGY

    ModelVersionFactory(version="v7", metrics={"micro_f1": 0.812, "p@1": 0.9})
    job = TrainingJob.objects.create(
        trigger=TrainingTrigger.MANUAL,
        status=JobStatus.RUNNING,
        progress={
            "phase": "epoch",
            "step": 3,
            "total": 10,
            "elapsed_s": 12.5,
            "eta_s": 30.0,
            "device": "cpu",
        },
        log="started",
    )
    client = _login(admin_user)
    html = client.get(reverse("models")).content.decode()
    assert "v7" in html and "0.812" in html and "0.900" in html
    assert f"Job {job.id}" in html and "3 / 10" in html and "about 30.0 s left" in html
    assert f'<strong id="strategy-in-use">{DEFAULT_STRATEGY}</strong>' in html
    assert "disabled" in html.split('id="retrain"')[1].split(">")[0]  # a job is open
    live = client.get(reverse("models-live")).content.decode()
    assert "3 / 10" in live and "<html" not in live


def test_retrain_button_and_strategy_form(admin_user):
    client = _login(admin_user)
    response = client.post(reverse("models-train"))
    assert response.status_code == 302
    job = TrainingJob.objects.get()
    assert job.trigger == TrainingTrigger.MANUAL and job.created_by == admin_user
    response = client.post(reverse("models-strategy"), {"strategy": "binary_entropy"}, follow=True)
    assert "binary_entropy" in response.content.decode()
    assert Setting.objects.get(key=STRATEGY_SETTING).value == "binary_entropy"
    response = client.post(reverse("models-strategy"), {"strategy": "nope"}, follow=True)
    assert "unknown strategy" in response.content.decode()


def test_operators_cannot_post_to_the_models_page(operator):
    client = _login(operator)
    assert client.post(reverse("models-train")).status_code == 403
    assert client.post(reverse("models-strategy"), {"strategy": "random"}).status_code == 403
    assert not TrainingJob.objects.exists()
