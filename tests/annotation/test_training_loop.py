"""Training a version end to end in-process with the real tagger (its fastest configuration)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from annotation.models import (
    JobStatus,
    ModelState,
    ModelVersion,
    Product,
    ProductTag,
    ReviewStatus,
    SuggestionRefresh,
    TrainingJob,
    TrainingTrigger,
)
from annotation.services.training import (
    ARTIFACT_META_FILE,
    model_version_activate,
    model_version_train,
    training_job_request,
)
from tests.annotation.training_support import catalog_load, demo_rows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_broker", "fast_tagger"),
]


def _train(trigger: str = TrainingTrigger.MANUAL) -> TrainingJob:
    job = training_job_request(trigger=trigger, enqueue=False)
    finished = model_version_train(job.id)
    assert finished is not None
    return finished


def _model_dirs() -> list[str]:
    return sorted(p.name for p in Path(settings.MODEL_DIR).iterdir() if p.is_dir())


def test_training_registers_an_immutable_version_with_its_slice_and_metrics():
    catalog_load(demo_rows(tagged=200, untagged=30))
    finished = _train()
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    version = finished.model_version
    assert version.state == ModelState.READY and version.is_active  # the first version is promoted
    assert version.version in _model_dirs() and not [d for d in _model_dirs() if ".tmp-" in d]
    artifact = Path(version.artifact_path)
    meta = json.loads((artifact / ARTIFACT_META_FILE).read_text())
    valid_ids = version.config["valid_ids"]
    assert meta["valid_ids"] == valid_ids and len(valid_ids) == version.valid_size > 0
    assert version.train_size + version.valid_size == 200
    assert set(version.config["tag_ids"]) == {
        t for row in demo_rows(tagged=200) for t in row["tags"]
    }  # canonical names of every approved tag
    for key in ("micro_f1", "p@1", "p@5", "per_tag"):
        assert key in version.metrics, key
    assert 0.0 < version.metrics["micro_f1"] <= 1.0
    promotion = version.metrics["promotion"]
    assert promotion["active_version"] is None and promotion["slice_size"] == version.valid_size
    assert version.device in ("cpu", "cuda") or version.device.startswith("cuda")
    assert version.duration_s > 0 and len(version.data_fingerprint) == 64
    assert finished.progress["phase"] == "done" and finished.progress["elapsed_s"] > 0
    assert "validation micro-F1" in finished.log and "promotion: promoted" in finished.log
    # The activation flagged every unreviewed product and opened their refresh.
    refresh = SuggestionRefresh.objects.get(model_version=version)
    assert refresh.total == Product.objects.filter(review_status=ReviewStatus.UNREVIEWED).count() == 230
    # Delivered again: nothing happens.
    assert model_version_train(finished.id) is None
    assert ModelVersion.objects.count() == 1


def test_retrain_is_compared_with_the_active_version_on_the_same_slice():
    catalog_load(demo_rows(tagged=240, untagged=10))
    first = _train().model_version
    second_job = _train()
    assert second_job.status == JobStatus.SUCCEEDED, second_job.error
    second = second_job.model_version
    promotion = second.metrics["promotion"]
    assert promotion["active_version"] == first.version
    assert promotion["slice_size"] == second.valid_size
    assert promotion["active_micro_f1"] is not None
    # The slice rule is the same for both runs: identical data, identical held-out products.
    assert second.config["valid_ids"] == first.config["valid_ids"]
    should_promote = promotion["candidate_micro_f1"] >= promotion["active_micro_f1"]
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.is_active is should_promote and first.is_active is not should_promote


def test_manual_promotion_leaves_activation_to_the_admin(settings, admin_user):
    catalog_load(demo_rows(tagged=200, untagged=10), reviewed_tagged=True)
    first = _train().model_version
    settings.MODEL_PROMOTION = "manual"
    second = _train().model_version
    second.refresh_from_db()
    assert second.state == ModelState.READY and not second.is_active
    assert second.metrics["promotion"]["decision"].startswith("manual")
    # The admin activates it, then rolls back to the first one.
    model_version_activate(version=second, user=admin_user)
    assert ModelVersion.objects.get(is_active=True) == second
    model_version_activate(version=first, user=admin_user)
    assert ModelVersion.objects.get(is_active=True) == first
    assert Product.objects.filter(review_status=ReviewStatus.UNREVIEWED, needs_suggestion=True).count() == 10
    # The rolled-back-from version's refresh stops; the active one's is open.
    assert SuggestionRefresh.objects.filter(model_version=first, status=JobStatus.QUEUED).exists()
    assert not SuggestionRefresh.objects.filter(model_version=second, status=JobStatus.QUEUED).exists()


def test_a_training_that_raises_fails_with_the_error_and_changes_nothing(settings):
    catalog_load(demo_rows(tagged=120, untagged=10))
    good = _train().model_version
    settings.TAGSTUDIO_TAGGER = "no-such-tagger"
    failed = _train()
    assert failed.status == JobStatus.FAILED
    assert "no-such-tagger" in failed.error
    assert failed.model_version.state == ModelState.FAILED
    assert ModelVersion.objects.get(is_active=True) == good
    assert failed.model_version.version not in _model_dirs()
    assert not [d for d in _model_dirs() if ".tmp-" in d]


def test_inactive_and_merged_tags_train_under_their_canonical_tag():
    from annotation.models import Tag

    catalog_load(demo_rows(tagged=150))
    skin = Tag.objects.get(normalized_name="skin care")
    face = Tag.objects.get(normalized_name="face care")
    medicine = Tag.objects.get(normalized_name="health & medicine")
    Tag.objects.filter(id=face.id).update(merged_into=skin, is_active=False)
    Tag.objects.filter(id=medicine.id).update(is_active=False)
    version = _train().model_version
    names = set(version.config["tag_ids"])
    assert "skin care" in names and "face care" not in names and "health & medicine" not in names
    assert version.config["tag_ids"]["skin care"] == skin.id


def test_train_command_runs_here_and_async_queues(settings):
    catalog_load(demo_rows(tagged=120))
    out = StringIO()
    call_command("train", no_progress=True, stdout=out)
    assert "micro-F1" in out.getvalue()
    job = TrainingJob.objects.get()
    assert job.trigger == TrainingTrigger.COMMAND and job.status == JobStatus.SUCCEEDED
    out = StringIO()
    call_command("train", run_async=True, stdout=out)
    queued = TrainingJob.objects.exclude(id=job.id).get()
    assert queued.status == JobStatus.QUEUED and f"Training job {queued.id} is queued" in out.getvalue()
    with pytest.raises(CommandError, match="already queued"):
        call_command("train", no_progress=True, stdout=StringIO())
    ProductTag.objects.all().delete()
    TrainingJob.objects.filter(id=queued.id).update(status=JobStatus.FAILED)
    with pytest.raises(CommandError, match="No approved tags"):
        call_command("train", no_progress=True, stdout=StringIO())


def test_an_active_version_that_cannot_be_scored_is_kept_and_the_admin_decides():
    import shutil

    catalog_load(demo_rows(tagged=120))
    first = _train().model_version
    shutil.rmtree(Path(settings.MODEL_DIR) / first.version)  # e.g. a volume that lost it
    second_job = _train()
    assert second_job.status == JobStatus.SUCCEEDED, second_job.error
    second = second_job.model_version
    assert not second.is_active and ModelVersion.objects.get(is_active=True) == first
    promotion = second.metrics["promotion"]
    assert "could not score it" in promotion["decision"] and "FileNotFoundError" in promotion["active_error"]
