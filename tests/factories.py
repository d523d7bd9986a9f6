"""factory_boy factories for the rows tests build: products, tags, users per role, model versions, and the
suggestions, product tags and review events that join them. Plain rows in the real PostgreSQL; a test that is
about a service's rules calls the service, not these."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import factory
from django.conf import settings
from django.utils import timezone
from factory.django import DjangoModelFactory

from annotation.models import (
    ModelState,
    ModelVersion,
    Product,
    ProductTag,
    ReviewAction,
    ReviewEvent,
    Suggestion,
    Tag,
    TagAlias,
    TagSource,
)
from annotation.roles import ADMIN, OPERATOR
from annotation.services.users import user_create
from annotation.taxonomy import normalize_tag_name


class UserFactory(DjangoModelFactory):
    """A user with a role group and an API token (``user.auth_token.key``), made the way the app makes them."""

    class Meta:
        model = settings.AUTH_USER_MODEL

    username = factory.Sequence(lambda n: f"user{n}")
    password = "test-pass-123"
    role = OPERATOR

    @classmethod
    def _create(cls, model_class, *, username: str, password: str, role: str, **extra):
        user, _ = user_create(username=username, password=password, role=role, validate=False, **extra)
        return user


class OperatorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"operator{n}")
    role = OPERATOR


class AdminFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    role = ADMIN


class TagFactory(DjangoModelFactory):
    """A tag with its normalised name; ``aliases=("a", "b")`` adds aliases."""

    class Meta:
        model = Tag
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"tag {n}")
    normalized_name = factory.LazyAttribute(lambda tag: normalize_tag_name(tag.name))

    @factory.post_generation
    def aliases(tag: Tag, create: bool, names: Iterable[str] | None, **_) -> None:
        for name in names or ():
            TagAlias.objects.create(tag=tag, name=name, normalized_name=normalize_tag_name(name))


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    external_id = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.LazyAttribute(lambda product: f"Product {product.external_id}")


class ModelVersionFactory(DjangoModelFactory):
    """A trained (READY) version, inactive unless ``is_active=True``."""

    class Meta:
        model = ModelVersion

    version = factory.Sequence(lambda n: f"v{n}")
    state = ModelState.READY
    train_size = 0
    valid_size = factory.LazyAttribute(lambda version: version.train_size // 5)


class SuggestionFactory(DjangoModelFactory):
    class Meta:
        model = Suggestion

    product = factory.SubFactory(ProductFactory)
    tag = factory.SubFactory(TagFactory)
    model_version = factory.SubFactory(ModelVersionFactory)
    score = 0.5


class ProductTagFactory(DjangoModelFactory):
    """An approved tag; by review unless ``source`` says otherwise. ``stamp_product=True`` also stamps the
    product's ``tags_updated_at`` as the services do when they change its tags (what incremental export
    reads)."""

    class Meta:
        model = ProductTag
        skip_postgeneration_save = True

    product = factory.SubFactory(ProductFactory)
    tag = factory.SubFactory(TagFactory)
    source = TagSource.REVIEW

    @factory.post_generation
    def stamp_product(product_tag: ProductTag, create: bool, stamp: bool | None, **_) -> None:
        if create and stamp:
            Product.objects.filter(pk=product_tag.product_id).update(tags_updated_at=timezone.now())


class ReviewEventFactory(DjangoModelFactory):
    class Meta:
        model = ReviewEvent

    product = factory.SubFactory(ProductFactory)
    user = factory.SubFactory(OperatorFactory)
    action = ReviewAction.SUBMIT


def products_create(count: int, *, prefix: str = "SKU", **fields) -> list[Product]:
    """``count`` products ``<prefix>-0000``, ``<prefix>-0001`` ... titled ``Product <prefix> <i>``, in one insert;
    ``fields`` (title, priority, review_status ...) apply to all of them."""
    now = timezone.now()
    products = [
        ProductFactory.build(
            **{
                "external_id": f"{prefix}-{i:04d}",
                "title": f"Product {prefix} {i}",
                "description": f"Description of {prefix} {i}",
                "brand": "Acme",
                "created_at": now,
                "updated_at": now,
                **fields,
            }
        )
        for i in range(count)
    ]
    return Product.objects.bulk_create(products)


def suggestions_create(
    product: Product, version: ModelVersion, scores: dict[Tag, float], *, current: bool = True
) -> None:
    """Store a version's suggestions for a product, selected from 0.5 up (and make them the product's current
    ones)."""
    Suggestion.objects.bulk_create(
        [
            SuggestionFactory.build(
                product=product, tag=tag, model_version=version, score=score, selected=score >= 0.5
            )
            for tag, score in scores.items()
        ]
    )
    if current:
        Product.objects.filter(pk=product.pk).update(suggested_by=version)
        product.suggested_by = version


def catalog_jsonl_write(path: Path, rows: list) -> Path:
    """A JSONL catalog file, one line per row: a dict as JSON (UTF-8, not escaped), a str as it is (for
    malformed lines)."""
    path.write_text(
        "".join(
            (row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n" for row in rows
        ),
        encoding="utf-8",
    )
    return path
