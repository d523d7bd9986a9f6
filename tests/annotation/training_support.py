"""Helpers shared by the learning-loop tests: a small real catalog in the database (demo catalog rows)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.utils import timezone
from kombu import pools as kombu_pools

from annotation.models import Product, ProductTag, ReviewStatus, TagSource
from annotation.services.model_files import artifact_dir
from annotation.taxonomy.resolver import TagResolver
from mlcore.types import ProductRecord
from tests.factories import ModelVersionFactory

# The quickest tagger configuration mlcore offers: the loop's tests are about the loop, not the tagger.
FAST_TAGGER = os.environ.get("TAGSTUDIO_TEST_TAGGER", "lexical")
DEMO_CATALOG = Path(__file__).resolve().parents[2] / "annotation" / "fixtures" / "demo_catalog.jsonl"


def demo_rows(*, tagged: int, untagged: int = 0) -> list[dict]:
    """The first ``tagged`` tagged and ``untagged`` untagged rows of the demo catalog, in file order."""
    with_tags, without = [], []
    with open(DEMO_CATALOG, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            bucket = with_tags if row.get("tags") else without
            limit = tagged if row.get("tags") else untagged
            if len(bucket) < limit:
                bucket.append(row)
            if len(with_tags) >= tagged and len(without) >= untagged:
                break
    return with_tags + without


def catalog_load(rows: list[dict], *, reviewed_tagged: bool = False) -> list[Product]:
    """Products as an import leaves them: flagged for suggestions, file tags approved (source import)."""
    now = timezone.now()
    products = Product.objects.bulk_create(
        [
            Product(
                external_id=row["id"],
                title=row["title"],
                description=row.get("description") or "",
                brand=row.get("brand") or "",
                category_path=row.get("category_path") or [],
                lang=row.get("lang") or "",
                content_hash=hashlib.sha256(row["title"].encode()).hexdigest(),
                review_status=(
                    ReviewStatus.REVIEWED if reviewed_tagged and row.get("tags") else ReviewStatus.UNREVIEWED
                ),
                needs_suggestion=True,
                created_at=now,
                updated_at=now,
            )
            for row in rows
        ]
    )
    resolver = TagResolver()
    names = sorted({tag for row in rows for tag in row.get("tags") or []})
    tag_ids, _ = resolver.resolve(names, create=True)
    ProductTag.objects.bulk_create(
        [
            ProductTag(product=product, tag_id=tag_ids[tag], source=TagSource.IMPORT, approved_at=now)
            for product, row in zip(products, rows)
            for tag in row.get("tags") or []
        ]
    )
    return products


@contextmanager
def memory_broker() -> Iterator[None]:
    """Send this process's tasks to kombu's in-memory transport: in-process tests of the services enqueue
    follow-up tasks (refresh batches, re-ranking) that no worker should pick up from the shared broker."""
    from tagstudio.celery import app

    keys = ("broker_write_url", "broker_read_url")
    saved = {key: app.conf.get(key) for key in keys}

    def reset() -> None:
        # kombu keeps its pools in a global registry keyed by URL: empty it, or a closed pool comes back.
        kombu_pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.update({key: "memory://" for key in keys})
    reset()
    try:
        yield
    finally:
        app.conf.update(saved)
        reset()


FASHION_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "mlcore_en_fashion.jsonl"


def trained_version(tagger: str = FAST_TAGGER, **version_fields):
    """An active version whose artifact mlcore really trained (on the shared fashion sample, 240 products)
    under MODEL_DIR, without the training job around it: for tests of what the card does with a model."""
    # Here, not at module top: every conftest imports this module, and only the tests that train should
    # load scikit-learn.
    from mlcore.training import TrainConfig, train

    with open(FASHION_SAMPLE, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    records = [
        ProductRecord(id=r["id"], title=r["title"], lang=r.get("lang"), tags=tuple(r["tags"])) for r in rows
    ]
    version = ModelVersionFactory(is_active=True, **version_fields)
    train(records, artifact_dir(version), TrainConfig(tagger=tagger))
    return version
