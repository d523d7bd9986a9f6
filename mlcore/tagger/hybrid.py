"""The default tagger: transformer embeddings + lexical model + a calibrated, stacked blend.

Parts (each produces one score per product and tag):

1. **transformer**: frozen encoder embeddings (cached on disk, :mod:`mlcore.embeddings`) and a
   trainable multi-label head (PyTorch MLP, BCE, AdamW, early stopping). With ``fine_tune=True``
   (default only when CUDA is present) the encoder itself is fine-tuned instead
   (:mod:`mlcore.tagger.finetune`).
2. **lexical**: word + character n-gram TF-IDF (jieba words for Chinese), one-vs-rest logistic
   regression (:mod:`mlcore.tagger.lexical`).
3. **neighbours**: similarity-weighted tag votes of the nearest training products (embedding space).
4. **mentions**: whether the tag's words occur in the product name, with how often such a mention
   meant the tag in training (:mod:`mlcore.tagger.mentions`).

The **blend** is a gradient-boosted classifier over (product, candidate tag) pairs whose features are
those scores plus the tag's prior: it learns how far to trust each part, per situation, and outputs a
calibrated probability. It is trained on a validation slice the parts did not see; per-tag/global
thresholds are tuned on cross-fitted blend outputs of that slice. The parts are then refitted on all
records (same epochs), so the final model learns from every label.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from mlcore.data import encode_labels, group_kfold, split_records
from mlcore.device import cpu_threads, pick_device
from mlcore.embeddings import EmbeddingCache, TextEncoder, embed_texts
from mlcore.settings import RuntimeSettings
from mlcore.tagger.base import ExplanationSources, NeighbourIndex, ProgressCallback, ScoredTagger
from mlcore.tagger.config import HybridConfig
from mlcore.tagger.features import LexicalFeaturizer, NetConfig, predict_net, train_multilabel_net
from mlcore.tagger.lexical import OneVsRestLinear, check_training_records, tag_classes
from mlcore.tagger.mentions import MentionIndex
from mlcore.text import clean_text, product_text
from mlcore.thresholds import tune_thresholds
from mlcore.types import ProductRecord

__all__ = ["HybridTagger", "embedding_text"]

_EPS = 1e-4
# Neighbour titles kept in the artifact for explanations: enough to recognise a product on a review card.
_INDEX_TITLE_CHARS = 200


def embedding_text(record: ProductRecord) -> str:
    """What the encoder reads: title first (the encoder's length cap cuts the rest, never the title)."""
    return product_text(record, title_repeats=1, max_description_chars=400)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p)).astype(np.float32)


def knn_votes(
    query: np.ndarray, index: np.ndarray, labels: sparse.csr_matrix, *, k: int = 10, power: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """(votes (n, n_classes) in [0, 1], top similarity (n,)): similarity-weighted tag share of the
    ``k`` nearest index rows (vectors are unit-length, so the dot product is the cosine)."""
    n = query.shape[0]
    votes = np.zeros((n, labels.shape[1]), dtype=np.float32)
    top_sim = np.zeros(n, dtype=np.float32)
    if n == 0 or index.shape[0] == 0:
        return votes, top_sim
    k = min(k, index.shape[0])
    labels = sparse.csr_matrix(labels)
    for start in range(0, n, 1024):
        sims = query[start : start + 1024] @ index.T
        nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        nn_sims = np.take_along_axis(sims, nn, axis=1)
        weights = np.clip(nn_sims, 0.0, None) ** power + 1e-6
        weights /= weights.sum(axis=1, keepdims=True)
        rows = np.repeat(np.arange(nn.shape[0]), k)
        w = sparse.csr_matrix((weights.ravel(), (rows, nn.ravel())), shape=(nn.shape[0], index.shape[0]))
        votes[start : start + len(nn)] = (w @ labels).toarray()
        top_sim[start : start + len(nn)] = nn_sims.max(axis=1)
    return votes, top_sim


class _Parts:
    """The fitted parts, trained on one set of records."""

    def __init__(self) -> None:
        self.featurizer: LexicalFeaturizer
        self.lexical: OneVsRestLinear
        self.head: Any = None
        self.index_embeddings: np.ndarray
        self.index_labels: sparse.csr_matrix
        # Per index row, for explanations; None in artifacts saved before they were kept.
        self.index_ids: list[str] | None = None
        self.index_titles: list[str] | None = None
        self.mentions: MentionIndex
        self.mention_precision: np.ndarray
        self.mention_recall: np.ndarray
        self.prior: np.ndarray
        self.head_epochs: int = 0


class HybridTagger(ScoredTagger):
    """TagStudio's default tagger (see the module docstring). Config: :class:`HybridConfig`.

    Fitted beyond the weights: ``fine_tune_`` (whether the encoder was fine-tuned: ``config.fine_tune``,
    or when that is None, whether CUDA was available at fit time).
    """

    name = "default"
    config_class = HybridConfig
    config: HybridConfig

    def __init__(
        self,
        config: HybridConfig | Mapping[str, Any] | None = None,
        *,
        runtime: RuntimeSettings | None = None,
    ) -> None:
        super().__init__(config, runtime=runtime)
        self._encoder: TextEncoder | None = None

    # ----------------------------------------------------------------------------------------- encoding
    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = TextEncoder(
                self.config.base_model or self.runtime.base_model,
                max_length=self.config.max_length,
                device=self.runtime.device,
                num_threads=self.runtime.num_threads,
                local_files_only=self.runtime.local_files_only,
            )
        return self._encoder

    def _cache(self) -> EmbeddingCache | None:
        directory = self.runtime.embedding_cache_dir()
        return EmbeddingCache(directory) if directory is not None else None

    def _device(self) -> torch.device:
        return pick_device(self.runtime.device, num_threads=self.runtime.num_threads)

    def _embed(
        self, records: Sequence[ProductRecord], progress: ProgressCallback | None = None
    ) -> np.ndarray:
        return embed_texts(
            [embedding_text(r) for r in records], self.encoder, self._cache(), progress=progress
        )

    # ------------------------------------------------------------------------------------------ parts
    def _fit_parts(
        self,
        records: Sequence[ProductRecord],
        emb: np.ndarray,
        y: sparse.csr_matrix,
        *,
        valid: tuple[Sequence[ProductRecord], np.ndarray, sparse.csr_matrix] | None = None,
        head_epochs: int | None = None,
        reuse: _Parts | None = None,
        progress: ProgressCallback | None = None,
    ) -> _Parts:
        """``reuse``: parts whose trained models (lexical model and head) to keep instead of training them
        again; the neighbour index, mention statistics and priors are always built from ``records``."""
        parts = _Parts()
        if reuse is not None:
            parts.featurizer, parts.lexical = reuse.featurizer, reuse.lexical
        else:
            parts.featurizer = LexicalFeaturizer()
            x = parts.featurizer.fit_transform(list(records))
            tick = (lambda d, t: progress("lexical", d, t)) if progress is not None else None
            parts.lexical = OneVsRestLinear(
                C=self.config.C, n_jobs=self.runtime.num_threads, seed=self.seed
            ).fit(x, y, progress=tick)
        device = self._device()
        # Batches of 512 at lr 3e-3 converge in ~30 epochs where 256 at 2e-3 took ~45 (20,000 bigbasket
        # products: 17 s instead of 29 s on 2 cores).
        net_cfg = NetConfig(
            hidden=self.config.hidden,
            epochs=self.config.epochs,
            batch_size=512,
            lr=3e-3,
            patience=2,
            seed=self.seed,
        )
        epoch_tick = (lambda d, t: progress("head", d, t)) if progress is not None else None
        if reuse is not None:
            parts.head, parts.head_epochs = reuse.head, reuse.head_epochs
        elif self.fine_tune_:
            from mlcore.tagger.finetune import FineTunedClassifier

            epochs = int(head_epochs or self.config.fine_tune_epochs)
            parts.head, best = FineTunedClassifier.train(
                self.encoder.name,
                self.classes_,
                [embedding_text(r) for r in records],
                y,
                valid=([embedding_text(r) for r in valid[0]], valid[2]) if valid is not None else None,
                epochs=epochs,
                max_length=self.config.max_length,
                device=device,
                seed=self.seed,
                on_epoch=(lambda d, t: progress("fine-tune", d, t)) if progress is not None else None,
                local_files_only=self.runtime.local_files_only,
            )
            parts.head_epochs = best if valid is not None else epochs
        elif valid is not None:
            _, v_emb, v_y = valid
            head, info = train_multilabel_net(
                y, xd=emb, valid=(None, v_emb, v_y), config=net_cfg, device=device, on_epoch=epoch_tick
            )
            parts.head_epochs = int(info["best_epoch"])
            parts.head = head.cpu()
        else:
            head, _ = train_multilabel_net(
                y, xd=emb, config=net_cfg, epochs=head_epochs, device=device, on_epoch=epoch_tick
            )
            parts.head_epochs = int(head_epochs or net_cfg.epochs)
            parts.head = head.cpu()
        parts.index_embeddings = emb
        parts.index_labels = y
        parts.index_ids = [r.id for r in records]
        parts.index_titles = [clean_text(r.title)[:_INDEX_TITLE_CHARS] for r in records]
        parts.mentions = MentionIndex(self.classes_)
        m = parts.mentions.matrix(records)
        hits = np.asarray(m.sum(axis=0)).ravel()
        both = np.asarray(m.multiply(y).sum(axis=0)).ravel()
        support = np.asarray(y.sum(axis=0)).ravel()
        # Smoothed: a mention seen rarely says little either way.
        parts.mention_precision = ((both + 0.5) / (hits + 2.0)).astype(np.float32)
        parts.mention_recall = ((both + 0.5) / (support + 2.0)).astype(np.float32)
        parts.prior = ((support + 0.5) / (len(records) + 1.0)).astype(np.float32)
        return parts

    def _part_scores(
        self, parts: _Parts, records: Sequence[ProductRecord], emb: np.ndarray
    ) -> dict[str, Any]:
        x = parts.featurizer.transform(list(records))
        lex = parts.lexical.predict_proba(x)
        if self.fine_tune_:
            head = parts.head.predict_proba([embedding_text(r) for r in records])
        else:
            head = predict_net(parts.head, None, emb)
        knn, top_sim = knn_votes(emb, parts.index_embeddings, parts.index_labels, k=self.config.knn_k)
        mentions = parts.mentions.matrix(records).toarray()
        return {"lex": lex, "head": head, "knn": knn, "top_sim": top_sim, "mentions": mentions}

    # ------------------------------------------------------------------------------------------ blend
    def _pairs(self, parts: _Parts, scores: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, features) for each product's candidate tags."""
        lex, head, knn, mentions = scores["lex"], scores["head"], scores["knn"], scores["mentions"]
        n, n_classes = lex.shape
        combined = lex + head + knn + mentions
        c = min(self.config.candidates, n_classes)
        top = (
            np.argpartition(-combined, c - 1, axis=1)[:, :c]
            if c < n_classes
            else np.tile(np.arange(n_classes), (n, 1))
        )
        cand = np.zeros((n, n_classes), dtype=bool)
        np.put_along_axis(cand, top, True, axis=1)
        cand |= mentions > 0
        rows, cols = np.nonzero(cand)
        rank_lex = np.argsort(np.argsort(-lex, axis=1), axis=1)
        rank_head = np.argsort(np.argsort(-head, axis=1), axis=1)
        feats = np.column_stack(
            [
                _logit(lex[rows, cols]),
                _logit(head[rows, cols]),
                knn[rows, cols],
                mentions[rows, cols],
                mentions[rows, cols] * _logit(parts.mention_precision[cols]),
                _logit(parts.mention_recall[cols]),
                _logit(parts.prior[cols]),
                scores["top_sim"][rows],
                np.minimum(rank_lex[rows, cols], 50),
                np.minimum(rank_head[rows, cols], 50),
                lex.max(axis=1)[rows],
                mentions.sum(axis=1)[rows],
            ]
        ).astype(np.float32)
        return rows, cols, feats

    def _new_blender(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=self.seed
        )

    def _blend(self, blender: Any, parts: _Parts, scores: dict[str, Any]) -> np.ndarray:
        n, n_classes = scores["lex"].shape
        proba = np.zeros((n, n_classes), dtype=np.float32)
        if n == 0:
            return proba
        rows, cols, feats = self._pairs(parts, scores)
        proba[rows, cols] = blender.predict_proba(feats)[:, 1]
        return proba

    # -------------------------------------------------------------------------------------------- fit
    @property
    def seed(self) -> int:
        return self.config.seed

    def fit(self, records: Sequence[ProductRecord], *, progress: ProgressCallback | None = None) -> Self:
        self._device()  # sets torch's CPU thread count
        with threadpool_limits(limits=cpu_threads(self.runtime.num_threads)):
            return self._fit(records, progress=progress)

    def _fit(self, records: Sequence[ProductRecord], *, progress: ProgressCallback | None = None) -> Self:
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        labelled = check_training_records(records)
        self.classes_ = tag_classes(labelled)
        self.fine_tune_ = (
            bool(torch.cuda.is_available()) if self.config.fine_tune is None else self.config.fine_tune
        )
        emb_all = self._embed(labelled, progress)
        row_of = {r.id: i for i, r in enumerate(labelled)}
        y_all = encode_labels([r.tags for r in labelled], self.classes_)

        # The slice trains the blender and tunes thresholds; past a few thousand products more of it adds
        # little there and costs the parts' training data.
        valid_fraction = min(self.config.valid_fraction, self.config.max_valid / len(labelled))
        fit_part, valid_part = split_records(labelled, valid_fraction, self.seed)
        if len(valid_part) < 10 or len(fit_part) < 10:
            raise ValueError(
                f"too few labelled products ({len(labelled)}) to fit the default tagger: it needs at least "
                "~30 with different titles (use the 'lexical' or 'keyword' tagger for tiny sets)"
            )
        fi = np.array([row_of[r.id] for r in fit_part])
        vi = np.array([row_of[r.id] for r in valid_part])
        y_fit, y_valid = y_all[fi], y_all[vi]
        parts = self._fit_parts(
            fit_part, emb_all[fi], y_fit, valid=(valid_part, emb_all[vi], y_valid), progress=progress
        )
        scores = self._part_scores(parts, valid_part, emb_all[vi])
        rows, cols, feats = self._pairs(parts, scores)
        target = np.asarray(y_valid[rows, cols]).ravel().astype(np.int8)
        if progress is not None:
            progress("blend", 0, 3)
        # Cross-fitted blend outputs on the slice (2 folds by title group) to tune thresholds honestly.
        fold = group_kfold(valid_part, 2, self.seed)[rows]
        oof = np.zeros(len(rows), dtype=np.float32)
        for k in range(2):
            train_mask = fold != k
            if len(np.unique(target[train_mask])) < 2:
                oof[~train_mask] = target[train_mask].mean() if train_mask.any() else 0.0
                continue
            model = self._new_blender().fit(feats[train_mask], target[train_mask])
            oof[~train_mask] = model.predict_proba(feats[~train_mask])[:, 1]
            if progress is not None:
                progress("blend", k + 1, 3)
        proba_valid = np.zeros(y_valid.shape, dtype=np.float32)
        proba_valid[rows, cols] = oof
        n_missing = int(sum(len(r.tags) for r in valid_part) - y_valid.sum())
        self.default_threshold_, self.thresholds_, valid_f1 = tune_thresholds(
            y_valid, proba_valid, n_missing=n_missing
        )
        if len(np.unique(target)) < 2:
            raise ValueError("the validation slice has no candidate tag that is right: too little data")
        self.blender_ = self._new_blender().fit(feats, target)
        if progress is not None:
            progress("blend", 3, 3)
        # Refit the parts on all labelled records (the head with the epochs found above). On large sets the
        # lexical model and head trained on the fit part are kept (the slice is then at most max_valid
        # products, a small share of the data, and a second training would double the CPU time); the
        # neighbour index and the mention statistics take every record either way.
        refit = len(labelled) <= self.config.refit_max
        self.parts_ = self._fit_parts(
            labelled,
            emb_all,
            y_all,
            head_epochs=parts.head_epochs,
            reuse=None if refit else parts,
            progress=progress,
        )
        self.info_ = {
            "internal_valid_micro_f1": valid_f1,
            "internal_valid_size": len(valid_part),
            "n_train": len(labelled),
            "head_epochs": parts.head_epochs,
            "parts_refit_on_all": refit,
            "base_model": self.encoder.name,
            "base_model_fingerprint": self.encoder.fingerprint,
            "fit_seconds": time.perf_counter() - started,
        }
        return self

    def predict_proba(self, records: Sequence[ProductRecord]) -> np.ndarray:
        self._check_fitted()
        records = list(records)
        if not records:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        with threadpool_limits(limits=cpu_threads(self.runtime.num_threads)):
            emb = self._embed(records)
            scores = self._part_scores(self.parts_, records, emb)
            return self._blend(self.blender_, self.parts_, scores)

    def explanation_sources(self) -> ExplanationSources:
        self._check_fitted()
        parts = self.parts_
        return ExplanationSources(
            featurizer=parts.featurizer,
            linear=parts.lexical,
            neighbours=NeighbourIndex(
                embeddings=parts.index_embeddings,
                labels=parts.index_labels,
                ids=parts.index_ids,
                titles=parts.index_titles,
                k=self.config.knn_k,
                # Not under threadpool_limits: entering it costs ~9 ms (it scans the loaded libraries),
                # a third of a review card's budget, and a card's product is usually in the cache.
                embed=self._embed,
            ),
        )

    # ------------------------------------------------------------------------------------- save/load
    def _fitted_params(self) -> dict[str, Any]:
        return {"fine_tune_": self.fine_tune_}

    def _restore_fitted(self, fitted: Mapping[str, Any] | None, saved_config: Mapping[str, Any]) -> None:
        # Format 1 wrote the decision into the config's "fine_tune" (never None once fitted).
        source = saved_config.get("fine_tune") if fitted is None else fitted["fine_tune_"]
        self.fine_tune_ = bool(source)

    def _save_state(self, directory: Path) -> None:
        parts = self.parts_
        head = parts.head
        if self.fine_tune_:
            head.save(directory / "encoder")  # transformers checkpoint with the label maps
            head_shape = None
        else:
            torch.save(head.state_dict(), directory / "head.pt")
            head_shape = (head.n_dense, len(self.classes_))
        state = {
            "featurizer": parts.featurizer,
            "lexical": parts.lexical,
            "head_shape": head_shape,
            "head_epochs": parts.head_epochs,
            "index_embeddings": parts.index_embeddings.astype(np.float16),
            "index_labels": parts.index_labels,
            "index_ids": parts.index_ids,
            "index_titles": parts.index_titles,
            "mention_precision": parts.mention_precision,
            "mention_recall": parts.mention_recall,
            "prior": parts.prior,
            "blender": self.blender_,
        }
        with open(directory / "parts.pkl", "wb") as fh:
            pickle.dump(state, fh, protocol=5)

    def _load_state(self, directory: Path) -> None:
        from mlcore.tagger.features import MultiLabelNet

        with open(directory / "parts.pkl", "rb") as fh:
            state = pickle.load(fh)
        parts = _Parts()
        parts.featurizer = state["featurizer"]
        parts.lexical = state["lexical"]
        if self.fine_tune_:
            from mlcore.tagger.finetune import FineTunedClassifier

            parts.head = FineTunedClassifier.load(
                directory / "encoder", max_length=self.config.max_length, device=self._device()
            )
        else:
            n_dense, n_classes = state["head_shape"]
            head = MultiLabelNet(0, n_dense, n_classes, self.config.hidden, 0.0)
            head.load_state_dict(torch.load(directory / "head.pt", map_location="cpu", weights_only=True))
            head.eval()
            parts.head = head
        parts.head_epochs = state["head_epochs"]
        parts.index_embeddings = state["index_embeddings"].astype(np.float32)
        parts.index_labels = state["index_labels"]
        # Absent from artifacts saved before explanations cited neighbours by id and title.
        parts.index_ids = state.get("index_ids")
        parts.index_titles = state.get("index_titles")
        parts.mentions = MentionIndex(self.classes_)
        parts.mention_precision = state["mention_precision"]
        parts.mention_recall = state["mention_recall"]
        parts.prior = state["prior"]
        self.parts_ = parts
        self.blender_ = state["blender"]
