"""Lexical features and the small PyTorch learners shared by the taggers.

- :class:`LexicalFeaturizer`: word (1-2 gram, jieba words for Chinese) TF-IDF over the whole product
  text plus character n-gram TF-IDF over title and brand, L2-normalised blocks stacked side by side.
- :func:`train_multilabel_net`: a multi-label net (BCE, AdamW, early stopping on a validation part)
  over sparse and/or dense inputs; with no hidden layer on the sparse side it is one-vs-rest logistic
  regression trained jointly for all tags.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from mlcore.text import clean_text, lexical_tokens, normalize_text, product_text
from mlcore.types import ProductRecord

__all__ = [
    "LexicalFeaturizer",
    "MultiLabelNet",
    "NetConfig",
    "predict_net",
    "reuse_word_tokens",
    "train_multilabel_net",
]


# Texts -> word features, while a fit that featurises the same texts several times runs (see
# reuse_word_tokens); None otherwise.
_WORD_FEATURES: ContextVar[dict[str, list[str]] | None] = ContextVar("_WORD_FEATURES", default=None)
# Bound on the texts remembered: a cross-fitted fit has at most a few thousand; a large catalog's fit
# featurises each text at most twice, not worth the memory.
_MAX_REMEMBERED_TEXTS = 10_000


@contextmanager
def reuse_word_tokens() -> Iterator[None]:
    """Within the block, :func:`word_analyzer` works each distinct text out once (for up to
    ``_MAX_REMEMBERED_TEXTS`` texts): cross-fitting featurises every product once per fold and again for
    the final model, and tokenising (jieba for Chinese) was most of the featurising time."""
    token = _WORD_FEATURES.set({})
    try:
        yield
    finally:
        _WORD_FEATURES.reset(token)


def word_analyzer(text: str) -> list[str]:
    """Unigrams and bigrams of :func:`lexical_tokens` (module level so vectorizers pickle)."""
    remembered = _WORD_FEATURES.get()
    if remembered is not None:
        features = remembered.get(text)
        if features is not None:
            return features
    tokens = lexical_tokens(text)
    features = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
    if remembered is not None and len(remembered) < _MAX_REMEMBERED_TEXTS:
        remembered[text] = features
    return features


def title_text(record: ProductRecord) -> str:
    brand = clean_text(record.brand) if record.brand else ""
    return normalize_text(f"{record.title} {brand}" if brand else record.title)


def full_text(record: ProductRecord, max_description_chars: int = 1000) -> str:
    return product_text(record, title_repeats=2, max_description_chars=max_description_chars)


class LexicalFeaturizer:
    """Fit on product records, transform to a CSR TF-IDF matrix (word block + char block)."""

    def __init__(self, *, max_word_features: int = 200_000, max_char_features: int = 150_000) -> None:
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features

    def _texts(self, records: list[ProductRecord]) -> tuple[list[str], list[str]]:
        return [full_text(r) for r in records], [title_text(r) for r in records]

    def fit_transform(self, records: list[ProductRecord]) -> sparse.csr_matrix:
        full, titles = self._texts(records)
        self.word_ = TfidfVectorizer(
            analyzer=word_analyzer, sublinear_tf=True, max_features=self.max_word_features, dtype=np.float32
        )
        self.char_ = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(1, 4),
            sublinear_tf=True,
            min_df=2 if len(records) >= 50 else 1,
            max_features=self.max_char_features,
            dtype=np.float32,
        )
        xw = self.word_.fit_transform(full)
        xc = self.char_.fit_transform(titles)
        # The n-grams cut by min_df/max_features (often most of them): only for introspection, and
        # kept they would be pickled into every model (sklearn's own advice is to drop them).
        self.word_.stop_words_ = None
        self.char_.stop_words_ = None
        return self._stack(xw, xc)

    def transform(self, records: list[ProductRecord]) -> sparse.csr_matrix:
        full, titles = self._texts(records)
        return self._stack(self.word_.transform(full), self.char_.transform(titles))

    @staticmethod
    def _stack(xw: sparse.spmatrix, xc: sparse.spmatrix) -> sparse.csr_matrix:
        # Each block is unit-length; scaling by 1/sqrt(2) keeps the whole row unit-length.
        x = sparse.hstack([xw, xc], format="csr", dtype=np.float32) * (1.0 / math.sqrt(2.0))
        return normalize(x, copy=False).astype(np.float32)

    @property
    def n_features(self) -> int:
        return len(self.word_.vocabulary_) + len(self.char_.vocabulary_)


@dataclass
class NetConfig:
    hidden: int = 0  # hidden units on the dense side (0: linear)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    sparse_lr: float = 2e-2
    weight_decay: float = 1e-4
    dropout: float = 0.1
    patience: int = 3
    seed: int = 13


class MultiLabelNet(torch.nn.Module):
    """logits = sparse_x @ W + head(dense_x) + b (either input may be absent)."""

    def __init__(self, n_sparse: int, n_dense: int, n_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.n_sparse = n_sparse
        self.n_dense = n_dense
        # An EmbeddingBag with per-sample weights is a sparse-input linear layer whose gradient is sparse:
        # only the rows of features present in a batch are updated (SparseAdam), which keeps
        # 100k features x 1,000 tags trainable in seconds.
        if n_sparse:
            self.sparse_weight = torch.nn.EmbeddingBag(n_sparse, n_classes, mode="sum", sparse=True)
            torch.nn.init.zeros_(self.sparse_weight.weight)
        else:
            self.sparse_weight = None
        if n_dense:
            if hidden:
                self.dense = torch.nn.Sequential(
                    torch.nn.Dropout(dropout),
                    torch.nn.Linear(n_dense, hidden),
                    torch.nn.GELU(),
                    torch.nn.Dropout(dropout),
                    torch.nn.Linear(hidden, n_classes),
                )
            else:
                self.dense = torch.nn.Sequential(
                    torch.nn.Dropout(dropout), torch.nn.Linear(n_dense, n_classes)
                )
        else:
            self.dense = None
        self.bias = torch.nn.Parameter(torch.zeros(n_classes))

    def forward(self, xs: SparseBatch | None, xd: torch.Tensor | None) -> torch.Tensor:
        out = self.bias
        if self.sparse_weight is not None and xs is not None:
            out = out + self.sparse_weight(xs.indices, xs.offsets, per_sample_weights=xs.values)
        if self.dense is not None and xd is not None:
            out = out + self.dense(xd)
        return out


@dataclass
class SparseBatch:
    indices: torch.Tensor
    offsets: torch.Tensor
    values: torch.Tensor

    def to(self, device: torch.device) -> SparseBatch:
        return SparseBatch(self.indices.to(device), self.offsets.to(device), self.values.to(device))


def _to_torch_sparse(x: sparse.csr_matrix) -> SparseBatch:
    x = sparse.csr_matrix(x)
    return SparseBatch(
        torch.from_numpy(x.indices.astype(np.int64)),
        torch.from_numpy(x.indptr[:-1].astype(np.int64)),
        torch.from_numpy(x.data.astype(np.float32)),
    )


def _batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def predict_net(
    net: MultiLabelNet,
    xs: sparse.csr_matrix | None,
    xd: np.ndarray | None,
    *,
    batch_size: int = 2048,
    device: torch.device | None = None,
) -> np.ndarray:
    """Probabilities (n, n_classes) float32."""
    device = device or torch.device("cpu")
    n = xs.shape[0] if xs is not None else xd.shape[0]  # type: ignore[union-attr]
    net.eval()
    outs = []
    with torch.inference_mode():
        for idx in _batches(n, batch_size, None):
            bs = _to_torch_sparse(xs[idx]).to(device) if xs is not None else None
            bd = torch.from_numpy(xd[idx]).to(device) if xd is not None else None
            outs.append(torch.sigmoid(net(bs, bd)).float().cpu().numpy())
    return np.vstack(outs) if outs else np.zeros((0, net.bias.shape[0]), dtype=np.float32)


def _bce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Sum over tags, mean over products: rare tags are not drowned by averaging over hundreds of columns.
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / logits.shape[0]


def train_multilabel_net(
    y: sparse.csr_matrix,
    *,
    xs: sparse.csr_matrix | None = None,
    xd: np.ndarray | None = None,
    valid: tuple[sparse.csr_matrix | None, np.ndarray | None, sparse.csr_matrix] | None = None,
    config: NetConfig | None = None,
    epochs: int | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> tuple[MultiLabelNet, dict[str, Any]]:
    """Train a :class:`MultiLabelNet`; with ``valid`` it early-stops on validation loss and returns the
    best epoch's weights, else it runs ``epochs`` (or ``config.epochs``) epochs. Returns (net, info)."""
    cfg = config or NetConfig()
    device = device or torch.device("cpu")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n, n_classes = y.shape
    net = MultiLabelNet(
        xs.shape[1] if xs is not None else 0,
        xd.shape[1] if xd is not None else 0,
        n_classes,
        cfg.hidden,
        cfg.dropout,
    ).to(device)
    prior = np.asarray(y.mean(axis=0)).ravel().clip(1.0 / (n + 2), 1 - 1.0 / (n + 2))
    with torch.no_grad():
        net.bias.copy_(torch.from_numpy(np.log(prior / (1 - prior)).astype(np.float32)))
    groups = [{"params": [net.bias], "lr": cfg.lr, "weight_decay": 0.0}]
    if net.dense is not None:
        groups.append(
            {"params": list(net.dense.parameters()), "lr": cfg.lr, "weight_decay": cfg.weight_decay}
        )
    optimizers: list[torch.optim.Optimizer] = [torch.optim.AdamW(groups)]
    if net.sparse_weight is not None:
        optimizers.append(torch.optim.SparseAdam(list(net.sparse_weight.parameters()), lr=cfg.sparse_lr))
    max_epochs = epochs if epochs is not None else cfg.epochs
    best_loss, best_state, best_epoch, bad = math.inf, None, max_epochs, 0
    history: list[float] = []
    y_dense_rows = y.tocsr()
    for epoch in range(max_epochs):
        net.train()
        for idx in _batches(n, cfg.batch_size, rng):
            bs = _to_torch_sparse(xs[idx]).to(device) if xs is not None else None
            bd = torch.from_numpy(xd[idx]).to(device) if xd is not None else None
            by = torch.from_numpy(y_dense_rows[idx].toarray()).to(device)
            loss = _bce_loss(net(bs, bd), by)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, max_epochs)
        if valid is not None:
            vs, vd, vy = valid
            net.eval()
            with torch.inference_mode():
                total = 0.0
                nv = vy.shape[0]
                for idx in _batches(nv, 2048, None):
                    bs = _to_torch_sparse(vs[idx]).to(device) if vs is not None else None
                    bd = torch.from_numpy(vd[idx]).to(device) if vd is not None else None
                    by = torch.from_numpy(vy[idx].toarray()).to(device)
                    total += float(_bce_loss(net(bs, bd), by)) * len(idx)
                vloss = total / max(1, nv)
            history.append(vloss)
            if vloss < best_loss - 1e-4:
                best_loss, best_state, best_epoch, bad = vloss, copy.deepcopy(net.state_dict()), epoch + 1, 0
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    if valid is not None and best_state is not None:
        net.load_state_dict(best_state)
    return net, {"best_epoch": best_epoch if valid is not None else max_epochs, "valid_loss": history}
