"""The generic writer (SQLite, the embedded mode): Django's bulk operations in-process."""

from __future__ import annotations

from django.utils import timezone

from annotation.io.readers import (
    ProductRow,
)
from annotation.models import Product, ProductTag, ReviewStatus, TagSource
from annotation.services.imports.parse import _PRODUCT_COLUMNS
from annotation.taxonomy.resolver import TagResolver

# --- Generic writer (SQLite, the embedded mode) --------------------------------------------------------


def write_products_generic(rows: list[ProductRow]) -> tuple[int, int, dict[str, int]]:
    """Write one batch with Django's bulk operations; returns (created, updated, {external_id: id})."""
    existing = {
        external_id: (pk, content_hash)
        for external_id, pk, content_hash in Product.objects.filter(
            external_id__in=[row.external_id for row in rows]
        ).values_list("external_id", "id", "content_hash")
    }
    now = timezone.now()
    new_products, changed = [], []
    for row in rows:
        content_hash = row.content_hash
        fields = {
            "title": row.title,
            "description": row.description,
            "brand": row.brand,
            "category_path": row.category_path,
            "attributes": row.attributes,
            "lang": row.lang,
            "image_url": row.image_url,
            "content_hash": content_hash,
        }
        known = existing.get(row.external_id)
        if known is None:
            new_products.append(
                Product(external_id=row.external_id, created_at=now, updated_at=now, **fields)
            )
        elif known[1] != content_hash:
            changed.append(Product(id=known[0], needs_suggestion=True, updated_at=now, **fields))
    Product.objects.bulk_create(new_products, batch_size=1000)
    if changed:
        Product.objects.bulk_update(
            changed,
            [*(c for c in _PRODUCT_COLUMNS if c != "external_id"), "needs_suggestion", "updated_at"],
            batch_size=500,
        )
    ids: dict[str, int] = {}
    if any(row.tags for row in rows):
        ids = dict(
            Product.objects.filter(external_id__in=[row.external_id for row in rows if row.tags]).values_list(
                "external_id", "id"
            )
        )
    return len(new_products), len(changed), ids


def write_tags_generic(rows: list[ProductRow], ids: dict[str, int], resolver: TagResolver) -> int:
    """The generic counterpart of write_tags_postgres (same rules)."""
    unreviewed = set(
        Product.objects.filter(id__in=ids.values(), review_status=ReviewStatus.UNREVIEWED).values_list(
            "id", flat=True
        )
    )
    # Only the names of products that take the file's tags: a reviewed product's new names would
    # otherwise become tags without any product.
    names = {tag for row in rows if row.tags and ids[row.external_id] in unreviewed for tag in row.tags}
    if not names:
        return 0
    tag_ids = resolver.resolve_to_apply(names, create=True).tags  # deactivated tags: skipped
    pairs = {
        (ids[row.external_id], tag_ids[tag])
        for row in rows
        if row.tags and ids[row.external_id] in unreviewed
        for tag in row.tags
        if tag in tag_ids
    }
    existing = set(
        ProductTag.objects.filter(product_id__in={p for p, _ in pairs}).values_list("product_id", "tag_id")
    )
    new_pairs = pairs - existing
    if not new_pairs:
        return 0
    now = timezone.now()
    ProductTag.objects.bulk_create(
        [ProductTag(product_id=p, tag_id=t, source=TagSource.IMPORT, approved_at=now) for p, t in new_pairs],
        ignore_conflicts=True,  # a concurrent import of the same product
        batch_size=2000,
    )
    Product.objects.filter(id__in={p for p, _ in new_pairs}).update(tags_updated_at=now)
    return len(new_pairs)
