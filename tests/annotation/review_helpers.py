"""Builders for the review tests (plain ORM rows; the real PostgreSQL)."""

from __future__ import annotations

from django.utils import timezone

from annotation.models import ModelState, ModelVersion, Product, Suggestion, Tag, TagAlias
from annotation.taxonomy.names import normalize_tag_name


def make_products(count: int, *, prefix: str = "SKU", priority: float = 0.0, **fields) -> list[Product]:
    now = timezone.now()
    products = [
        Product(
            external_id=f"{prefix}-{i:04d}",
            title=fields.get("title", f"Product {prefix} {i}"),
            description=fields.get("description", f"Description of {prefix} {i}"),
            brand=fields.get("brand", "Acme"),
            priority=priority,
            created_at=now,
            updated_at=now,
        )
        for i in range(count)
    ]
    return Product.objects.bulk_create(products)


def make_tag(
    name: str, *, parent: Tag | None = None, aliases: tuple[str, ...] = (), active: bool = True
) -> Tag:
    tag = Tag.objects.create(
        name=name, normalized_name=normalize_tag_name(name), parent=parent, is_active=active
    )
    for alias in aliases:
        TagAlias.objects.create(tag=tag, name=alias, normalized_name=normalize_tag_name(alias))
    return tag


def make_version(version: str = "v1", *, active: bool = False) -> ModelVersion:
    return ModelVersion.objects.create(version=version, state=ModelState.READY, is_active=active)


def suggest(
    product: Product, version: ModelVersion, scores: dict[Tag, float], *, current: bool = True
) -> None:
    """Store a version's suggestions for a product (and make them the product's current ones)."""
    Suggestion.objects.bulk_create(
        [
            Suggestion(product=product, tag=tag, model_version=version, score=score, selected=score >= 0.5)
            for tag, score in scores.items()
        ]
    )
    if current:
        Product.objects.filter(pk=product.pk).update(suggested_by=version)
        product.suggested_by = version
