"""Review submit latency in the embedded mode (SQLite) while the worker writes a suggestion refresh and the
queue priorities: the submit waits for SQLite's one write lock, so it is as slow as the longest write
transaction the worker holds (issue 15: one submit waited 9.4 s during a retrain).

    python bench/embedded_submit_bench.py [--products 20000] [--submits 150] [--legacy]

Runs in a temporary var/ directory (embedded settings: no DATABASE_URL, no CELERY_BROKER_URL). The
worker side is the real write path (services.suggestions._suggestions_write for 2,000-product batches,
services.queue._priorities_write for every product) fed with synthetic scores; ``--legacy`` restores the
one-transaction-per-batch writes to show what they cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--submits", type=int, default=150)
    parser.add_argument("--legacy", action="store_true", help="one write transaction per batch (before)")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="ts-embedded-bench-"))
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "MODEL_DIR"):
        os.environ.pop(name, None)
    os.environ.update(TAGSTUDIO_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="tagstudio.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from annotation.models import ModelVersion, Product, SuggestionRefresh, Tag
    from annotation.services import queue, suggestions
    from annotation.services.reviews import review_claim_next, review_submit
    from annotation.services.users import user_create
    from annotation.taxonomy import normalize_tag_name
    from mlcore.inference import TagScore

    call_command("migrate", verbosity=0)
    if args.legacy:
        queue._SQLITE_WRITE_CHUNK = queue._WRITE_CHUNK
        suggestions._SQLITE_WRITE_PRODUCTS = 10**9
    names = [f"tag {i}" for i in range(args.tags)]
    tags = Tag.objects.bulk_create([Tag(name=n, normalized_name=normalize_tag_name(n)) for n in names])
    Product.objects.bulk_create(
        [
            Product(external_id=f"P{i:06d}", title=f"Product {i}", needs_suggestion=True, content_hash=str(i))
            for i in range(args.products)
        ],
        batch_size=2000,
    )
    version = ModelVersion.objects.create(
        version="v1", state="ready", is_active=True, config={"tag_ids": {t.name: t.id for t in tags}}
    )
    refresh = SuggestionRefresh.objects.create(model_version=version, total=args.products)
    operator, _ = user_create(username="op", password="x", role="operator", validate=False)
    rng = np.random.default_rng(0)
    connection.close()

    def worker() -> None:
        rows = list(
            Product.objects.filter(needs_suggestion=True)
            .order_by("id")
            .values_list(*suggestions._PRODUCT_FIELDS)
        )
        for start in range(0, len(rows), 2000):
            batch = rows[start : start + 2000]
            scored = [
                [
                    TagScore(tag=n, score=float(s), selected=bool(s > 0.5))
                    for n, s in zip(names, rng.random(len(names)))
                ]
                for _ in batch
            ]
            suggestions._suggestions_write(version, refresh, batch, scored)
        ids = np.array(Product.objects.order_by("id").values_list("id", flat=True))
        queue._priorities_write(ids, rng.random(len(ids)))
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    latencies = []
    while len(latencies) < args.submits and thread.is_alive():
        product = review_claim_next(user=operator)
        started = time.perf_counter()
        review_submit(product=product, user=operator, tags=["tag 1"], claim=product.claim_token)
        latencies.append((time.perf_counter() - started) * 1000)
    writing = thread.is_alive()
    thread.join()
    figures = np.array(latencies)
    print(
        f"{'legacy' if args.legacy else 'chunked'} writes: {len(figures)} submits during the refresh"
        f"{' (worker still writing at the end)' if writing else ''}: "
        f"p50 {np.percentile(figures, 50):.0f} ms, p95 {np.percentile(figures, 95):.0f} ms, max {figures.max():.0f} ms"
    )


if __name__ == "__main__":
    main()
