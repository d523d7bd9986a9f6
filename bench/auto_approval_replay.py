"""Replay auto-approval offline on a kept effort-bench run: what each version's evidence says against what it
would approve (a developer's analysis tool, not a benchmark with targets).

Needs a run kept with ``bench/effort_bench.py --keep-db --keep-files`` (the database and every version's
artifact directory). Per version it prints:

- the evidence (the version's ``validation_scores.json`` and ``out_of_fold_scores.json``) against the products
  it could approve (the pool's products not yet labelled when the version was trained, re-scored with the
  version): how hard each side is (median expected wrong decisions per product: 1 - score where selected, the
  score elsewhere, over the stored top 20), and the cut table ``mlcore.autoapprove.find_cuts`` finds;
- per level ``--levels``, the "sure" region of those products (every stored score at least that sure either
  way, at least one yes): products, pairs at or above the level, their precision against the gold tags, and
  the share of products whose approved tags are exactly the gold ones.

    BENCH_EFFORT_DB=ts_eff_x CELERY_BROKER_URL=redis://127.0.0.1:6379/3 .venv/bin/python \\
        bench/effort_bench.py --sets zh_ecommerce_ner_acl19 --modes auto --keep-db --keep-files
    .venv/bin/python bench/auto_approval_replay.py --database ts_eff_x --set zh_ecommerce_ner_acl19 \\
        --versions v5,v9
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_POSTGRES_URL, database_url  # noqa: E402

from mlcore.autoapprove import (  # noqa: E402
    OUT_OF_FOLD_SCORES_FILE,
    VALIDATION_SCORES_FILE,
    Cut,
    CutTable,
    TagCuts,
    find_cuts,
    product_decision,
)
from mlcore.inference import load_model, predict  # noqa: E402
from mlcore.records import record_from_dict  # noqa: E402
from mlcore.settings import RuntimeSettings  # noqa: E402

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
EMBEDDING_CACHE = REPO_ROOT / ".bench-cache" / "effort" / "embeddings"

# (tag, score, selected) per stored suggestion, and the product's gold tags.
Scored = tuple[list[tuple[str, float, bool]], set[str]]


def expected_wrong(scores: Sequence[tuple[str, float, bool]]) -> float:
    """Expected wrong decisions of one product, reading its stored scores as probabilities: the review queue's
    measure (``mlcore.selection.uncertainty.expected_wrong_decisions``, which takes dense float32 blocks)
    over a product's stored pairs, in full precision."""
    return sum((1.0 - s) if selected else s for _, s, selected in scores)


def sure_region(products: Sequence[Scored], level: float) -> dict[str, float]:
    """The products every stored score of which is at least ``level`` sure either way: their pairs at or above
    ``level`` against the gold tags. The rule is auto-approval's own (``mlcore.autoapprove.product_decision``:
    a product is confident when every suggestion is approved or rejected and one is approved), with one
    global cut at ``level`` and its mirror at ``1 - level``."""
    table = CutTable(
        per_tag={},
        global_=TagCuts(
            approve=Cut(value=level, n=0, k=0, lower=0.0),
            reject=Cut(value=1.0 - level, n=0, k=0, lower=0.0),
            pairs=0,
            positives=0,
        ),
        target=level,
        confidence=0.5,
        min_tag_evidence=1,
    )
    n_products = pairs = right = exact = 0
    for scores, gold in products:
        decision = product_decision([(t, s) for t, s, _ in scores], table)
        if not decision.confident:
            continue
        approved = set(decision.approved)
        n_products += 1
        pairs += len(approved)
        right += len(approved & gold)
        exact += approved == gold
    return {
        "products": n_products,
        "pairs": pairs,
        "precision": right / pairs if pairs else float("nan"),
        "exact": exact / n_products if n_products else float("nan"),
    }


def score_rows(artifact: Path) -> list[dict]:
    """The version's held-out and out-of-fold score rows, read once."""
    rows = []
    for name in (VALIDATION_SCORES_FILE, OUT_OF_FOLD_SCORES_FILE):
        path = artifact / name
        if path.exists():
            rows += json.loads(path.read_text(encoding="utf-8"))
    return rows


def evidence_of(rows: Sequence[dict]) -> list[Scored]:
    return [
        (
            [(str(t), float(s), bool(rest[0]) if rest else False) for t, s, *rest in row["scores"]],
            set(row["tags"]),
        )
        for row in rows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True, help="the kept bench database (BENCH_EFFORT_DB)")
    parser.add_argument("--database-url", default=BENCH_POSTGRES_URL, help="the PostgreSQL server")
    parser.add_argument("--set", required=True, help="the shared set the run used")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--versions", default="", help="comma-separated (default: every version)")
    parser.add_argument("--levels", default="0.9,0.95")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--min-tag-evidence", type=int, default=200)
    args = parser.parse_args(argv)
    import psycopg

    gold = {}
    with open(args.data_dir / args.set / "dev.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            gold[row["id"]] = row
    wanted = {v for v in args.versions.split(",") if v}
    levels = [float(x) for x in args.levels.split(",") if x]
    with psycopg.connect(database_url(args.database_url, args.database)) as conn:
        external_id = dict(conn.execute("SELECT id, external_id FROM annotation_product").fetchall())
        versions = conn.execute(
            "SELECT version, artifact_path, created_at FROM annotation_modelversion ORDER BY id"
        ).fetchall()
        reviews = conn.execute(
            "SELECT e.created_at, p.external_id FROM annotation_reviewevent e "
            "JOIN annotation_product p ON p.id = e.product_id WHERE e.action = 'submit'"
        ).fetchall()
    runtime = RuntimeSettings(cache_dir=EMBEDDING_CACHE, num_threads=1)
    for version, artifact_path, created in versions:
        if wanted and version not in wanted:
            continue
        artifact = Path(artifact_path)
        rows = [r for r in score_rows(artifact) if int(r["id"]) in external_id]
        evidence = evidence_of(rows)
        labelled = {external_id[int(r["id"])] for r in rows}
        reviewed = {eid for at, eid in reviews if at < created}
        open_ids = sorted(set(external_id.values()) - labelled - reviewed)
        records = [record_from_dict({**gold[i], "category_path": None, "tags": []}) for i in open_ids]
        model = load_model(artifact, runtime=runtime)
        candidates: list[Scored] = [
            ([(s.tag, float(s.score), bool(s.selected)) for s in scored], set(gold[i]["tags"]))
            for i, scored in zip(open_ids, predict(model, records, top_k=20))
        ]
        cuts = find_cuts(
            [(t, s, t in g) for scores, g in evidence for t, s, _ in scores],
            target=args.target,
            confidence=args.confidence,
            min_tag_evidence=args.min_tag_evidence,
        )
        approve = cuts.global_.approve
        print(
            f"{version}: evidence {len(evidence)} products (median expected wrong decisions "
            f"{statistics.median(expected_wrong(s) for s, _ in evidence):.2f}), open {len(candidates)} "
            f"({statistics.median(expected_wrong(s) for s, _ in candidates):.2f}); global approve cut "
            f"{'none' if approve is None else f'{approve.value:.3f} ({approve.k}/{approve.n})'}, "
            f"tags with their own: {sum(1 for c in cuts.per_tag.values() if c.approve is not None)}"
        )
        for level in levels:
            for side, products in (("evidence", evidence), ("open", candidates)):
                r = sure_region(products, level)
                print(
                    f"  sure at {level:g}, {side}: {r['products']} products, {r['pairs']} pairs, "
                    f"precision {r['precision']:.4f}, exact {r['exact']:.3f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
