"""Dataset helpers: seeded group splits (no id or identical title on both sides) and label encoding."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from mlcore.text import normalize_text
from mlcore.types import ProductRecord

__all__ = ["encode_labels", "group_key", "group_kfold", "split_records"]


def group_key(record: ProductRecord) -> str:
    """Products with the same case-folded, normalised title belong together (size/colour variants)."""
    return normalize_text(record.title)


def split_records(
    records: Sequence[ProductRecord],
    valid_fraction: float = 0.15,
    seed: int = 13,
    *,
    valid_ids: Sequence[str] | None = None,
) -> tuple[list[ProductRecord], list[ProductRecord]]:
    """(train, valid). With ``valid_ids`` those products (and any product sharing their normalised title)
    form the validation part; otherwise whole title groups are drawn with a seeded shuffle until
    ``valid_fraction`` of the products is reached. No title is ever on both sides."""
    if valid_ids is not None:
        wanted = set(valid_ids)
        valid_groups = {group_key(r) for r in records if r.id in wanted}
    else:
        if not 0.0 < valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        sizes: dict[str, int] = {}
        for r in records:
            key = group_key(r)
            sizes[key] = sizes.get(key, 0) + 1
        # Sort by a hash of the key so the order does not depend on the input order, then shuffle seeded.
        keys = sorted(sizes, key=lambda k: hashlib.sha1(k.encode()).hexdigest())
        random.Random(seed).shuffle(keys)
        target = valid_fraction * len(records)
        valid_groups = set()
        taken = 0
        for key in keys:
            if taken >= target:
                break
            valid_groups.add(key)
            taken += sizes[key]
    train, valid = [], []
    for r in records:
        (valid if group_key(r) in valid_groups else train).append(r)
    return train, valid


def group_kfold(records: Sequence[ProductRecord], n_folds: int, seed: int = 13) -> np.ndarray:
    """Fold number (0..n_folds-1) per record; products with the same normalised title share a fold."""
    keys = sorted({group_key(r) for r in records}, key=lambda k: hashlib.sha1(k.encode()).hexdigest())
    random.Random(seed).shuffle(keys)
    fold_of = {k: i % n_folds for i, k in enumerate(keys)}
    return np.array([fold_of[group_key(r)] for r in records], dtype=np.int64)


def encode_labels(tag_sets: Sequence[Sequence[str]], classes: Sequence[str]) -> sparse.csr_matrix:
    """Multi-hot CSR matrix (n, len(classes)); tags outside ``classes`` are ignored."""
    index = {t: i for i, t in enumerate(classes)}
    rows, cols = [], []
    for i, tags in enumerate(tag_sets):
        for t in tags:
            j = index.get(t)
            if j is not None:
                rows.append(i)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(tag_sets), len(classes)), dtype=np.float32)
