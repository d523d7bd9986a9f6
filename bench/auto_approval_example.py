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
    parser.add_argument(
        "--reviews",
        type=int,
        default=0,
        help="then review this many products from the queue (gold tags) and pass again",
    )
    parser.add_argument("--stop-rule", default="lower_bound", choices=["lower_bound", "upper_bound"])
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
    from annotation.models import Product, ReviewStatus
    from annotation.services.auto_approval import auto_approval_run, auto_approval_settings_set
    from annotation.services.imports import import_products
    from annotation.services.queue import queue_priorities_recompute
    from annotation.services.reviews import review_claim_next, review_submit
    from annotation.services.suggestions import suggestions_refresh_batch
    from annotation.services.training import training_job_request
    from annotation.services.training.run import model_version_train
    from annotation.services.users import user_create
    from annotation.taxonomy.names import normalize_tag_name

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

    queue_priorities_recompute()
    auto_approval_settings_set(enabled=True, target_precision=args.target, stop_rule=args.stop_rule)
    result = auto_approval_run()
    gold = {r["id"]: {normalize_tag_name(t) for t in r["tags"]} for r in pool_rows}
    out = {
        "set": args.set,
        "tagger": args.tagger,
        "seed": len(seed_rows),
        "pool": len(pool_rows),
        "target": args.target,
        "stop_rule": args.stop_rule,
        "version_micro_f1": version.metrics.get("micro_f1"),
        "prepare_seconds": round(prepared_s, 1),
        "first_pass": figures(version, result, gold),
    }
    if args.reviews:
        # A reviewer works the queue (audit products first), submitting each product's gold tags: an admin,
        # so gold tags the seed never used are created, as an admin's review does.
        operator, _token = user_create(username="reviewer", password="example-pass-123", role="admin")
        by_id = dict(Product.objects.values_list("id", "external_id"))
        names = {normalize_tag_name(t): t for r in pool_rows for t in r["tags"]}
        done = 0
        while done < args.reviews and (product := review_claim_next(user=operator)) is not None:
            review_submit(
                product=product,
                user=operator,
                tags=[names[t] for t in gold[by_id[product.id]]],
                claim=product.claim_token,
            )
            done += 1
        out["reviews"] = done
        out["after_reviews"] = figures(version, auto_approval_run(), gold)
    return out


def figures(version, result, gold) -> dict:
    from annotation.models import (
        AutoApprovalAudit,
        AutoApprovalVersion,
        Product,
        ProductTag,
        ReviewStatus,
        TagSource,
    )
    from annotation.selectors.auto_approval import audit_figures, auto_approval_settings, auto_approval_stop

    record = AutoApprovalVersion.objects.get(model_version=version)
    # Every pair the version approved that is still on a product (model, or confirmed by a review).
    model_rows = list(
        ProductTag.objects.filter(model_version=version, source__in=[TagSource.MODEL, TagSource.REVIEW])
        .filter(product__review_status__in=[ReviewStatus.AUTO, ReviewStatus.UNREVIEWED])
        .values_list("product__external_id", "product_id", "tag__normalized_name")
    )
    right = sum(1 for ext, _, tag in model_rows if tag in gold.get(ext, ()))
    out = list(Product.objects.filter(review_status=ReviewStatus.AUTO).values_list("external_id", "id"))
    approved_by_product: dict[int, set[str]] = {}
    for _ext, pid, tag in model_rows:
        approved_by_product.setdefault(pid, set()).add(tag)
    audit = audit_figures(version.id, auto_approval_settings())
    stop = auto_approval_stop()
    return {
        "skipped": result.skipped,
        "evidence": {k: v for k, v in record.evidence.items() if k != "exit"},
        "exit_gate": record.evidence.get("exit"),
        "global_cut": (record.cuts.get("global") or {}).get("approve"),
        "tags_with_own_cut": record.evidence.get("tags_with_own_cut"),
        "pairs_approved_this_pass": result.pairs_approved,
        "pairs_approved_total": record.approved_pairs,
        "model_pairs_on_unreviewed_products": len(model_rows),
        "their_true_precision": right / len(model_rows) if model_rows else None,
        "products_out_of_queue": len(out),
        "out_of_queue_exactly_right": sum(
            1 for ext, pid in out if approved_by_product.get(pid, set()) == gold.get(ext)
        ),
        "audit_drawn": AutoApprovalAudit.objects.filter(model_version=version).count(),
        "audit": audit.as_dict(),
        "stopped": stop["reason"] if stop else None,
        "pass_seconds": result.seconds,
    }


if __name__ == "__main__":
    main()
