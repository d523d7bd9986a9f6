"""Multi-label evaluation with scikit-learn, returned as a plain JSON-serialisable dict.

- ``micro_f1``/``micro_precision``/``micro_recall``: over every (product, tag) decision, tags the model
  selected that are not in the gold set count as false positives.
- ``macro_f1``: unweighted mean F1 over the tags that occur in the gold sets.
- ``samples_f1``: mean per-product F1.
- ``p@1``, ``p@5``, ``r@5``, ``ndcg@5``: ranking quality of the scored suggestions (P@5 divides by 5
  even when a product has fewer gold tags, the usual definition).
- ``per_tag``: precision/recall/F1/support per gold-or-predicted tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.metrics import f1_score, ndcg_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

__all__ = ["evaluate_tag_sets"]


def _ranking_metrics(gold: list[set[str]], ranked: Sequence[Sequence[str]], k: int = 5) -> dict[str, float]:
    p1 = pk = rk = 0.0
    for g, r in zip(gold, ranked):
        top = list(r[:k])
        hits = [t in g for t in top]
        p1 += float(bool(hits) and hits[0])
        pk += sum(hits) / k
        rk += sum(hits) / len(g) if g else 0.0
    n = max(1, len(gold))
    # nDCG@k with binary relevance; sklearn wants a score matrix, so turn ranks into descending scores.
    vocab = {
        t: i for i, t in enumerate(sorted({t for g in gold for t in g} | {t for r in ranked for t in r[:k]}))
    }
    if vocab and len(gold) > 0:
        rows, cols, vals = [], [], []
        for i, r in enumerate(ranked):
            for rank, t in enumerate(r[:k]):
                rows.append(i)
                cols.append(vocab[t])
                vals.append(float(k - rank))
        y_score = sparse.csr_matrix((vals, (rows, cols)), shape=(len(gold), len(vocab))).toarray()
        y_true = np.zeros_like(y_score)
        for i, g in enumerate(gold):
            for t in g:
                y_true[i, vocab[t]] = 1.0
        # A dummy column keeps ndcg_score defined for a single-label vocabulary.
        y_score = np.hstack([y_score, np.zeros((len(gold), 1))])
        y_true = np.hstack([y_true, np.zeros((len(gold), 1))])
        ndcg = float(ndcg_score(y_true, y_score, k=k))
    else:
        ndcg = 0.0
    return {"p@1": p1 / n, f"p@{k}": pk / n, f"r@{k}": rk / n, f"ndcg@{k}": ndcg}


def evaluate_tag_sets(
    gold: Sequence[Iterable[str]],
    selected: Sequence[Iterable[str]],
    ranked: Sequence[Sequence[str]] | None = None,
    *,
    per_tag: bool = True,
) -> dict[str, Any]:
    """Metrics for predicted tag sets against gold tag sets.

    ``selected`` are the tags a model applies per product; ``ranked`` (optional) its suggestions sorted
    by score for the ranking metrics (P@1, P@5, R@5, nDCG@5); without it the ranking metrics are left out.
    """
    if len(gold) != len(selected):
        raise ValueError(f"gold has {len(gold)} products but selected has {len(selected)}")
    if ranked is not None and len(ranked) != len(gold):
        raise ValueError(f"gold has {len(gold)} products but ranked has {len(ranked)}")
    gold_sets = [set(g) for g in gold]
    sel_sets = [set(s) for s in selected]
    if not gold_sets:
        raise ValueError("no products to evaluate")
    labels = sorted(set().union(*gold_sets, *sel_sets))
    mlb = MultiLabelBinarizer(classes=labels, sparse_output=True)
    y_true = mlb.fit_transform(gold_sets)
    y_pred = mlb.transform(sel_sets)
    gold_labels = sorted(set().union(*gold_sets))
    index = {t: i for i, t in enumerate(labels)}
    gold_idx = [index[t] for t in gold_labels]

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    out: dict[str, Any] = {
        "n_products": len(gold_sets),
        "n_tags_gold": len(gold_labels),
        "micro_f1": float(f),
        "micro_precision": float(p),
        "micro_recall": float(r),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=gold_idx, zero_division=0)),
        "samples_f1": float(f1_score(y_true, y_pred, average="samples", zero_division=0)),
        "mean_selected": float(np.mean([len(s) for s in sel_sets])),
    }
    if ranked is not None:
        out.update(_ranking_metrics(gold_sets, ranked))
    if per_tag:
        pt, rt, ft, st = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
        out["per_tag"] = {
            tag: {
                "precision": float(pt[i]),
                "recall": float(rt[i]),
                "f1": float(ft[i]),
                "support": int(st[i]),
            }
            for i, tag in enumerate(labels)
        }
    return out
