"""The data model refuses bad states at the database level."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import ModelVersion, Product, ProductTag, Tag, TagSource, TrainingJob


@pytest.mark.django_db
def test_external_id_is_unique():
    Product.objects.create(external_id="sku-1", title="A")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(external_id="sku-1", title="B")


@pytest.mark.django_db
def test_empty_title_and_half_claims_are_refused(operator):
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(external_id="sku-2", title="")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(external_id="sku-3", title="x", claimed_by=operator)
    Product.objects.create(
        external_id="sku-4", title="x", claimed_by=operator, claim_expires_at=timezone.now()
    )


@pytest.mark.django_db
def test_one_active_model_and_only_ready_ones():
    ModelVersion.objects.create(version="v1", state="ready", is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(version="v2", state="ready", is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(version="v3", state="training", is_active=True)


@pytest.mark.django_db
def test_one_open_training_job_at_a_time():
    TrainingJob.objects.create(trigger="manual")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingJob.objects.create(trigger="auto")
    TrainingJob.objects.filter(status="queued").update(status="succeeded")
    TrainingJob.objects.create(trigger="auto")


@pytest.mark.django_db
def test_product_tag_unique_and_tag_not_own_parent():
    product = Product.objects.create(external_id="sku-5", title="x")
    tag = Tag.objects.create(name="Red", normalized_name="red")
    ProductTag.objects.create(product=product, tag=tag, source=TagSource.IMPORT)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductTag.objects.create(product=product, tag=tag, source=TagSource.REVIEW)
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.filter(id=tag.id).update(parent=tag)
