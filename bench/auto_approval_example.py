"""Worked example of precision-gated auto-approval on a shared set, through the app's own services.

In one process, on a throwaway PostgreSQL database: import ``--seed`` products of a set with their gold
tags (marked reviewed) and ``--pool`` more without tags, train a version with the app's training service
(tagger ``--tagger``), score the pool (the suggestion refresh, run in-process), turn auto-approval on at
``--target`` and run one pass. Then it grades what was approved against the pool's gold tags, and plays
the audit: each drawn product's approved pairs are "reviewed" with its gold tags.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CACHE_URL=redis://127.0.0.1:6379/10 \\
      python bench/auto_approval_example.py --set myntra_catalog_desc --seed 1000 --pool 3000

Prints one JSON line. No broker is used: follow-up tasks go to kombu's memory transport.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    bench_database_name,
    database_create,
    database_drop,
    database_url,
    django_env,
    django_migrate,
    django_setup,
)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="myntra_catalog_desc")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--tagger", default="lexical")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    rows = [json.loads(line) for line in (SHARED / args.set / "dev.jsonl").open(encoding="utf-8")]
    random.Random(0).shuffle(rows)
    rows = rows[: args.seed + args.pool]
    seed_rows, pool_rows = rows[: args.seed], rows[args.seed :]

    url = database_url(os.environ["DATABASE_URL"], bench_database_name("autoapprove"))
    database_create(url)
    work = Path(tempfile.mkdtemp(prefix="autoapprove-"))
    settings = {
        "MODEL_DIR": str(work / "models"),
        "TAGSTUDIO_TAGGER": args.tagger,
        "MODEL_PROMOTION": "auto",
        "CELERY_BROKER_URL": "memory://",
    }
    django_migrate(django_env(url, **settings))
    django_setup(url, **settings)
    try:
        print(json.dumps(run(args, seed_rows, pool_rows, work)))
    finally:
        if not args.keep:
            database_drop(url)


def run(args, seed_rows, pool_rows, work: Path) -> dict:
    from annotation.models import AutoApprovalAudit, Product, ProductTag, ReviewStatus, TagSource
    from annotation.services.auto_approval import auto_approval_run, auto_approval_settings_set
    from annotation.services.imports import import_products
    from annotation.services.suggestions import suggestions_refresh_batch
    from annotation.services.training import training_job_request
    from annotation.services.training.run import model_version_train
    from annotation.taxonomy.names import normalize_tag_name
    from mlcore.autoapprove import clopper_pearson, precision_lower_bound

    def write(path: Path, items, *, tags: bool) -> Path:
        with path.open("w", encoding="utf-8") as fh:
            for r in items:
                record = {
                    k: r.get(k) for k in ("id", "title", "description", "brand", "category_path", "lang")
                }
                if tags:
                    record["tags"] = r["tags"]
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path

    started = time.monotonic()
    import_products(write(work / "seed.jsonl", seed_rows, tags=True))
    import_products(write(work / "pool.jsonl", pool_rows, tags=False))
    seed_ids = [r["id"] for r in seed_rows]
    Product.objects.filter(external_id__in=seed_ids).update(review_status=ReviewStatus.REVIEWED)

    job = training_job_request(trigger="command", enqueue=False)
    job = model_version_train(job.id)
    version = job.model_version
    version.refresh_from_db()
    assert version.is_active, f"the version was not promoted: {job.error or job.log[-500:]}"
    while Product.objects.filter(needs_suggestion=True).exists():
        suggestions_refresh_batch(model_version_id=version.id, size=1000)
    prepared_s = time.monotonic() - started

    auto_approval_settings_set(enabled=True, target_precision=args.target)
    result = auto_approval_run()

    gold = {r["id"]: {normalize_tag_name(t) for t in r["tags"]} for r in pool_rows}
    model_rows = list(
        ProductTag.objects.filter(source=TagSource.MODEL, model_version=version).values_list(
            "product__external_id", "product_id", "tag__normalized_name"
        )
    )
    right = sum(1 for ext, _, tag in model_rows if tag in gold[ext])
    out = list(Product.objects.filter(review_status=ReviewStatus.AUTO).values_list("external_id", "id"))
    approved_by_product: dict[int, set[str]] = {}
    for _ext, pid, tag in model_rows:
        approved_by_product.setdefault(pid, set()).add(tag)
    out_exact = sum(1 for ext, pid in out if approved_by_product.get(pid, set()) == gold[ext])

    # The audit, reviewed with the gold tags: the realised precision the dashboard would show.
    audit_products = set(
        AutoApprovalAudit.objects.filter(model_version=version).values_list("product_id", flat=True)
    )
    audit_pairs = [(ext, tag) for ext, pid, tag in model_rows if pid in audit_products]
    audit_right = sum(1 for ext, tag in audit_pairs if tag in gold[ext])
    interval = clopper_pearson(audit_right, len(audit_pairs), 0.95) if audit_pairs else None

    record = version.auto_approval
    return {
        "set": args.set,
        "tagger": args.tagger,
        "seed": len(seed_rows),
        "pool": len(pool_rows),
        "target": args.target,
        "version_micro_f1": version.metrics.get("micro_f1"),
        "evidence": record.evidence,
        "global_cut": (record.cuts.get("global") or {}).get("approve"),
        "per_tag_cuts": {
            k: v["approve"]["value"] for k, v in (record.cuts.get("per_tag") or {}).items() if v["approve"]
        },
        "exit_gate": record.evidence.get("exit"),
        "pairs_approved": result.pairs_approved,
        "products_approved": result.products_approved,
        "pool_gold_pairs": sum(len(g) for g in gold.values()),
        "true_precision": right / len(model_rows) if model_rows else None,
        "recall_of_pool_gold": right / sum(len(g) for g in gold.values()),
        "products_out_of_queue": len(out),
        "out_of_queue_exactly_right": out_exact,
        "audit_products": len(audit_products),
        "audit_pairs": len(audit_pairs),
        "audit_precision": audit_right / len(audit_pairs) if audit_pairs else None,
        "audit_interval_95": interval,
        "audit_lower_bound_95": precision_lower_bound(audit_right, len(audit_pairs), 0.95)
        if audit_pairs
        else None,
        "pass_seconds": result.seconds,
        "prepare_seconds": round(prepared_s, 1),
    }


if __name__ == "__main__":
    main()
