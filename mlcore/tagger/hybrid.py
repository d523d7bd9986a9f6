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
   meant the tag in training, and whether they occur only inside a longer mention of another tag
   ("滑板" only within "滑板车") (:mod:`mlcore.tagger.mentions`).

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
from mlcore.postprocess import ExclusiveGroup
from mlcore.settings import RuntimeSettings
from mlcore.tagger.base import ExplanationSources, NeighbourIndex, ProgressCallback, ScoredTagger
from mlcore.tagger.config import HybridConfig
from mlcore.tagger.exclusive import choose_group_rules, learn_exclusive_groups
from mlcore.tagger.features import (
    LexicalFeaturizer,
    NetConfig,
    predict_net,
    reuse_word_tokens,
    train_multilabel_net,
)
from mlcore.tagger.hierarchy import hierarchy_features, learn_parents, parents_from_map
from mlcore.tagger.lexical import OneVsRestLinear, check_training_records, tag_classes
from mlcore.tagger.mentions import MentionIndex, tag_surface
from mlcore.text import clean_text, product_text
from mlcore.thresholds import apply_thresholds, tune_thresholds
from mlcore.types import ProductRecord, TagScore, Taxonomy

__all__ = ["HybridTagger", "embedding_text"]

_EPS = 1e-4
# Blend feature sets: 1 = the parts' scores and the tag's statistics; 2 adds the tag's support, its name's
# similarity to the product and its hierarchy relatives; 3 adds whether the tag is named only inside a longer
# mention of another tag (artifacts of an older format load with their own features).
_FEATURE_VERSION = 3
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
        self.support: np.ndarray | None = None  # labelled products per tag (None in version-1 artifacts)
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
        self._holdout_parts: _Parts | None = None
        # After fit: (product ids, rows, cols, blend score) of the out-of-fold candidate pairs.
        self._out_of_fold: tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None = None
        self.feature_version_ = _FEATURE_VERSION
        self.aliases_: dict[str, list[str]] = {}
        # Tag-name vectors (one row per name or alias) and the class column of each row; None: not used.
        self.name_embeddings_: np.ndarray | None = None
        self.name_columns_: np.ndarray | None = None
        self.parent_: np.ndarray | None = None  # parent column per class, -1 for none
        # Per tag, the probability given where the tag is not among a product's blend candidates.
        self.residual_: np.ndarray | None = None

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
        mentions: sparse.csr_matrix | None = None,
        progress: ProgressCallback | None = None,
    ) -> _Parts:
        """``reuse``: parts whose trained models (lexical model and head) to keep instead of training them
        again; the neighbour index, mention statistics and priors are always built from ``records``.
        ``mentions``: the :class:`MentionIndex` matrix of ``records`` when already computed."""
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
        parts.mentions = MentionIndex(self.classes_, self.aliases_)
        m = mentions if mentions is not None else parts.mentions.matrix(records)
        hits = np.asarray(m.sum(axis=0)).ravel()
        both = np.asarray(m.multiply(y).sum(axis=0)).ravel()
        support = np.asarray(y.sum(axis=0)).ravel()
        # Smoothed: a mention seen rarely says little either way.
        parts.mention_precision = ((both + 0.5) / (hits + 2.0)).astype(np.float32)
        parts.mention_recall = ((both + 0.5) / (support + 2.0)).astype(np.float32)
        parts.prior = ((support + 0.5) / (len(records) + 1.0)).astype(np.float32)
        parts.support = support.astype(np.float32)
        return parts

    def _part_scores(
        self,
        parts: _Parts,
        records: Sequence[ProductRecord],
        emb: np.ndarray,
        mentions: sparse.csr_matrix | None = None,
        covered: sparse.csr_matrix | None = None,
    ) -> dict[str, Any]:
        """``mentions`` / ``covered``: the :class:`MentionIndex` matrices of ``records`` when already
        computed (they depend on the classes and aliases only, not on the parts' training records)."""
        x = parts.featurizer.transform(list(records))
        if mentions is None:
            mentions, covered = parts.mentions.matrices(records)
        if self.feature_version_ >= 3 and covered is None:
            covered = parts.mentions.covered_matrix(records)
        lex = parts.lexical.predict_proba(x)
        if self.fine_tune_:
            head = parts.head.predict_proba([embedding_text(r) for r in records])
        else:
            head = predict_net(parts.head, None, emb)
        knn, top_sim = knn_votes(emb, parts.index_embeddings, parts.index_labels, k=self.config.knn_k)
        return {
            "lex": lex,
            "head": head,
            "knn": knn,
            "top_sim": top_sim,
            "mentions": mentions.toarray(),
            "names": self._name_similarity(emb),
            # Version 3: the tag is named only inside another tag's longer name (MentionIndex.covered).
            "covered": covered,
        }

    # -------------------------------------------------------------------------------------- tag names
    def _embed_tag_names(self) -> None:
        """Encode every tag's name and aliases (their surface: the value of a ``field:value`` tag)."""
        texts, columns = [], []
        for j, tag in enumerate(self.classes_):
            for name in dict.fromkeys(
                [tag_surface(tag), *(tag_surface(a) for a in self.aliases_.get(tag, ()))]
            ):
                if name:
                    texts.append(name)
                    columns.append(j)
        if not texts:
            self.name_embeddings_, self.name_columns_ = None, None
            return
        self.name_embeddings_ = embed_texts(texts, self.encoder, self._cache()).astype(np.float32)
        self.name_columns_ = np.asarray(columns, dtype=np.int64)

    def _name_similarity(self, emb: np.ndarray) -> np.ndarray | None:
        """(n, n_classes) cosine similarity of each product to each tag's best-matching name (or alias)."""
        if self.name_embeddings_ is None or self.name_columns_ is None:
            return None
        sims = emb @ self.name_embeddings_.T
        out = np.full((emb.shape[0], len(self.classes_)), -1.0, dtype=np.float32)
        if len(self.name_columns_) == len(self.classes_) and np.array_equal(
            self.name_columns_, np.arange(len(self.classes_))
        ):
            out[:] = sims
        else:
            for r, j in enumerate(self.name_columns_):
                np.maximum(out[:, j], sims[:, r], out=out[:, j])
        return out

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
        names = scores.get("names")
        if names is not None and self.feature_version_ >= 2:
            # The tags whose names are closest to the product, so a tag with no example can be a candidate.
            c_names = min(3, n_classes)
            np.put_along_axis(cand, np.argpartition(-names, c_names - 1, axis=1)[:, :c_names], True, axis=1)
        rows, cols = np.nonzero(cand)
        rank_lex = np.argsort(np.argsort(-lex, axis=1), axis=1)
        rank_head = np.argsort(np.argsort(-head, axis=1), axis=1)
        columns = [
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
        if self.feature_version_ >= 2:
            columns += self._v2_features(parts, scores, rows, cols)
        if self.feature_version_ >= 3:
            columns.append(np.asarray(scores["covered"][rows, cols]).ravel())
        return rows, cols, np.column_stack(columns).astype(np.float32)

    def _v2_features(
        self, parts: _Parts, scores: dict[str, Any], rows: np.ndarray, cols: np.ndarray
    ) -> list[np.ndarray]:
        """The tag's support, its name's similarity to the product, and its hierarchy relatives' scores.

        Support tells the blend how far the learned parts can know the tag (0: only its words speak for
        it), so one blend serves tags with thousands of examples and tags just added to the taxonomy.
        """
        support = parts.support if parts.support is not None else np.zeros(len(self.classes_), np.float32)
        names = scores.get("names")
        if names is not None:
            rank_names = np.argsort(np.argsort(-names, axis=1), axis=1)
            name_feats = [
                names[rows, cols],
                names[rows, cols] - names.max(axis=1)[rows],
                np.minimum(rank_names[rows, cols], 50),
            ]
        else:
            name_feats = [np.zeros(len(rows), np.float32)] * 2 + [np.full(len(rows), 50.0, np.float32)]
        parent = self.parent_ if self.parent_ is not None else np.full(len(self.classes_), -1)
        base = (scores["lex"] + scores["head"] + scores["knn"]) / 3.0
        parent_score, child_max, sibling_max = hierarchy_features(base, parent)
        return [
            np.log1p(support[cols]),
            *name_feats,
            (parent[cols] >= 0).astype(np.float32),
            parent_score[rows, cols],
            child_max[rows, cols],
            sibling_max[rows, cols],
        ]

    def _new_blender(self, n_pairs: int | None = None) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=self.seed
        )

    def _blend(self, blender: Any, parts: _Parts, scores: dict[str, Any]) -> np.ndarray:
        n, n_classes = scores["lex"].shape
        # Tags outside a product's candidates get the rate at which such tags were right out of fold, not 0:
        # the review queue sums expected wrong decisions over every tag, and a 0 there hides real misses.
        residual = self.residual_ if self.residual_ is not None else np.zeros(n_classes, np.float32)
        proba = np.tile(residual.astype(np.float32), (n, 1))
        if n == 0:
            return proba
        rows, cols, feats = self._pairs(parts, scores)
        proba[rows, cols] = blender.predict_proba(feats)[:, 1]
        return proba

    # -------------------------------------------------------------------------------------------- fit
    @property
    def seed(self) -> int:
        return self.config.seed

    def fit(
        self,
        records: Sequence[ProductRecord],
        *,
        progress: ProgressCallback | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> Self:
        """Fit on the labelled ``records``. ``taxonomy``: every tag the model may suggest (tags with no
        labelled product yet become classes scored from their words), their parents and aliases."""
        self._device()  # sets torch's CPU thread count
        # Cross-fitting featurises each product's text once per fold and again for the final parts: the
        # word tokens (jieba's segmentation above all) are worked out once.
        with threadpool_limits(limits=cpu_threads(self.runtime.num_threads)), reuse_word_tokens():
            return self._fit(records, progress=progress, taxonomy=taxonomy)

    def _fit(
        self,
        records: Sequence[ProductRecord],
        *,
        progress: ProgressCallback | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> Self:
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        labelled = check_training_records(records)
        known = set(taxonomy.tags) if taxonomy is not None else set()
        self.classes_ = sorted(set(tag_classes(labelled)) | known)
        self.feature_version_ = _FEATURE_VERSION
        self.aliases_ = {t: list(a) for t, a in taxonomy.aliases.items() if a} if taxonomy is not None else {}
        self.fine_tune_ = (
            bool(torch.cuda.is_available()) if self.config.fine_tune is None else self.config.fine_tune
        )
        emb_all = self._embed(labelled, progress)
        y_all = encode_labels([r.tags for r in labelled], self.classes_)
        if self.config.tag_names:
            self._embed_tag_names()
        else:
            self.name_embeddings_, self.name_columns_ = None, None
        if not self.config.hierarchy:
            self.parent_ = np.full(len(self.classes_), -1, dtype=np.int64)
        elif taxonomy is not None and any(p is not None for p in taxonomy.parents.values()):
            self.parent_ = parents_from_map(self.classes_, taxonomy.parents)
        else:
            self.parent_ = learn_parents(y_all)
        if taxonomy is not None and taxonomy.parents:
            # The taxonomy's hierarchy closes the selection (a selected child selects its parents).
            self.postprocess.parents = {t: p for t, p in taxonomy.parents.items() if p is not None}

        cross_fit = len(labelled) <= self.config.cross_fit_max and not self.fine_tune_
        # Which tags each product's name mentions, and mentions only inside a longer one, depends on the
        # classes only, not on a fold: found once, in one pass.
        mentions_all, covered_all = (
            MentionIndex(self.classes_, self.aliases_).matrices(labelled) if cross_fit else (None, None)
        )
        if cross_fit:
            rows, cols, feats, y_eval, eval_records, head_epochs = self._cross_fitted_pairs(
                labelled, emb_all, y_all, mentions_all, covered_all, progress
            )
            n_missing = 0
        else:
            rows, cols, feats, y_eval, eval_records, head_epochs, n_missing = self._holdout_pairs(
                labelled, emb_all, y_all, progress
            )
        target = np.asarray(y_eval[rows, cols]).ravel().astype(np.int8)
        if progress is not None:
            progress("blend", 0, 3)
        # Cross-fitted blend outputs (2 folds by title group) to tune thresholds honestly.
        fold = group_kfold(eval_records, 2, self.seed)[rows]
        oof = np.zeros(len(rows), dtype=np.float32)
        for k in range(2):
            train_mask = fold != k
            if len(np.unique(target[train_mask])) < 2:
                oof[~train_mask] = target[train_mask].mean() if train_mask.any() else 0.0
                continue
            model = self._new_blender(int(train_mask.sum())).fit(feats[train_mask], target[train_mask])
            oof[~train_mask] = model.predict_proba(feats[~train_mask])[:, 1]
            if progress is not None:
                progress("blend", k + 1, 3)
        proba_eval = np.zeros(y_eval.shape, dtype=np.float32)
        proba_eval[rows, cols] = oof
        self.residual_ = self._residual_rates(y_eval, rows, cols)
        # Every score above came from parts that did not fit the product and a blender that did not fit
        # its title group: the evidence out_of_fold_suggestions serves.
        self._out_of_fold = ([r.id for r in eval_records], rows, cols, oof)
        self.default_threshold_, self.thresholds_, valid_f1 = tune_thresholds(
            y_eval, proba_eval, n_missing=n_missing
        )
        self.postprocess.exclusive_groups = self._exclusive_groups(y_all, y_eval, proba_eval, n_missing)
        if len(np.unique(target)) < 2:
            raise ValueError("the validation slice has no candidate tag that is right: too little data")
        self.blender_ = self._new_blender(len(target)).fit(feats, target)
        if progress is not None:
            progress("blend", 3, 3)
        self.info_ = {
            "internal_valid_micro_f1": valid_f1,
            "internal_valid_size": len(eval_records),
            "cross_fitted": cross_fit,
            "n_train": len(labelled),
            "n_classes": len(self.classes_),
            "n_classes_without_example": int((np.asarray(y_all.sum(axis=0)).ravel() == 0).sum()),
            "exclusive_groups": [[len(g.tags), g.rule] for g in self.postprocess.exclusive_groups],
            "head_epochs": head_epochs,
            "base_model": self.encoder.name,
            "base_model_fingerprint": self.encoder.fingerprint,
        }
        # Refit the parts on all labelled records (the head with the epochs found above). On large sets the
        # lexical model and head trained on the fit part are kept (the slice is then at most max_valid
        # products, a small share of the data, and a second training would double the CPU time); the
        # neighbour index and the mention statistics take every record either way.
        refit = cross_fit or len(labelled) <= self.config.refit_max
        self.parts_ = self._fit_parts(
            labelled,
            emb_all,
            y_all,
            head_epochs=head_epochs,
            reuse=None if refit else self._holdout_parts,
            mentions=mentions_all,
            progress=progress,
        )
        self._holdout_parts = None
        self.info_["parts_refit_on_all"] = refit
        self.info_["fit_seconds"] = time.perf_counter() - started
        return self

    def _exclusive_groups(
        self, y_all: sparse.spmatrix, y_eval: sparse.spmatrix, proba_eval: np.ndarray, n_missing: int
    ) -> list[ExclusiveGroup]:
        """Groups of tags that exclude each other (learned from every label) with the rule each gets,
        chosen on the out-of-fold blend scores at the tuned thresholds (see ``mlcore.tagger.exclusive``)."""
        if not self.config.exclusive_groups:
            return []
        groups = learn_exclusive_groups(y_all)
        if not groups:
            return []
        decided = apply_thresholds(proba_eval, np.asarray(self.thresholds_, dtype=np.float32))
        rules = choose_group_rules(y_eval, proba_eval, decided, groups, n_missing=n_missing)
        return [ExclusiveGroup(tags=tuple(self.classes_[j] for j in cols), rule=rule) for cols, rule in rules]

    def _residual_rates(self, y_eval: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Per tag, how often it was right where it was no candidate (out of fold), smoothed towards the
        rate over all tags and capped well below any threshold, so it never selects a tag."""
        n, n_classes = y_eval.shape
        gold = np.asarray(y_eval.sum(axis=0)).ravel()
        covered = np.bincount(cols, weights=np.asarray(y_eval[rows, cols]).ravel(), minlength=n_classes)
        candidates = np.bincount(cols, minlength=n_classes)
        missed = np.clip(gold - covered, 0, None)
        outside = np.clip(n - candidates, 0, None).astype(np.float64)
        overall = (missed.sum() + 0.5) / (outside.sum() + 1.0)
        strength = 20.0
        rate = (missed + strength * overall) / (outside + strength)
        return np.minimum(rate, 0.02).astype(np.float32)

    def _cross_fitted_pairs(
        self,
        labelled: Sequence[ProductRecord],
        emb_all: np.ndarray,
        y_all: sparse.csr_matrix,
        mentions_all: sparse.csr_matrix,
        covered_all: sparse.csr_matrix,
        progress: ProgressCallback | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sparse.csr_matrix, Sequence[ProductRecord], int]:
        """Blend pairs for every labelled product, each scored by parts fitted on the other folds.

        With few labels a held-out slice is a handful of products (20 at 100 labels): the blend and the
        thresholds then learn from noise. Cross-fitting gives them every product at the cost of
        ``cross_fit_folds`` cheap part fits (small data). A tag whose only examples sit in the held fold
        has no example in that fold's parts, which is how the blend learns to score tags without one.
        """
        folds = self.config.cross_fit_folds
        fold_of = group_kfold(labelled, folds, self.seed)
        if len(np.unique(fold_of)) < 2 or len(labelled) < 20:
            raise ValueError(
                f"too few labelled products ({len(labelled)}) to fit the default tagger: it needs at least "
                "~30 with different titles (use the 'lexical' or 'keyword' tagger for tiny sets)"
            )
        all_rows, all_cols, all_feats, epochs = [], [], [], []
        for k in range(folds):
            held = np.flatnonzero(fold_of == k)
            fit = np.flatnonzero(fold_of != k)
            if len(held) == 0:
                continue
            fit_records = [labelled[i] for i in fit]
            held_records = [labelled[i] for i in held]
            parts = self._fit_parts(
                fit_records,
                emb_all[fit],
                y_all[fit],
                valid=(held_records, emb_all[held], y_all[held]),
                mentions=mentions_all[fit],
                progress=progress,
            )
            epochs.append(parts.head_epochs)
            scores = self._part_scores(
                parts, held_records, emb_all[held], mentions_all[held], covered_all[held]
            )
            rows, cols, feats = self._pairs(parts, scores)
            all_rows.append(held[rows])
            all_cols.append(cols)
            all_feats.append(feats)
        head_epochs = max(1, int(round(float(np.median(epochs)))))
        return (
            np.concatenate(all_rows),
            np.concatenate(all_cols),
            np.vstack(all_feats),
            y_all,
            labelled,
            head_epochs,
        )

    def _holdout_pairs(
        self,
        labelled: Sequence[ProductRecord],
        emb_all: np.ndarray,
        y_all: sparse.csr_matrix,
        progress: ProgressCallback | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sparse.csr_matrix, Sequence[ProductRecord], int, int]:
        """Blend pairs for a validation slice the parts did not see (large sets, or fine-tuning)."""
        row_of = {r.id: i for i, r in enumerate(labelled)}
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
        self._holdout_parts = parts
        scores = self._part_scores(parts, valid_part, emb_all[vi])
        rows, cols, feats = self._pairs(parts, scores)
        n_missing = int(sum(len(r.tags) for r in valid_part) - y_valid.sum())
        return rows, cols, feats, y_valid, valid_part, parts.head_epochs, n_missing

    def out_of_fold_suggestions(self, *, top_k: int = 20) -> list[tuple[str, list[TagScore]]]:
        """The cross-fitted products (every labelled one up to ``cross_fit_max``, else the internal
        hold-out slice) with the suggestions their out-of-fold scores give.

        Each candidate pair's score is the blend's, from part scores of parts fitted without the
        product's fold and a blender fitted without its title group's fold (the 2-fold blend that tunes
        the thresholds); a tag outside the product's candidates gets ``residual_``, as in ``predict_proba``;
        then the same post-processing as ``suggest`` (thresholds, hierarchy closure, top ``top_k``). The
        fold models saw fewer products than the saved tagger, so their scores are, if anything, less sure.
        The thresholds, the exclusive-group rules and ``residual_`` were tuned on these scores: they decide
        the ``selected`` flags
        and (through the hierarchy closure) an ancestor's score, never a candidate's own score."""
        if self._out_of_fold is None:
            return []
        ids, rows, cols, oof = self._out_of_fold
        residual = self.residual_ if self.residual_ is not None else np.zeros(len(self.classes_), np.float32)
        out: list[tuple[str, list[TagScore]]] = []
        chunk = 2_000
        for start in range(0, len(ids), chunk):
            stop = min(start + chunk, len(ids))
            proba = np.tile(residual.astype(np.float32), (stop - start, 1))
            inside = (rows >= start) & (rows < stop)
            proba[rows[inside] - start, cols[inside]] = oof[inside]
            out += zip(ids[start:stop], self.suggest_from_proba(proba, top_k=top_k), strict=True)
        return out

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
            "support": parts.support,
            "blender": self.blender_,
            "feature_version": self.feature_version_,
            "aliases": self.aliases_,
            "name_embeddings": self.name_embeddings_,
            "name_columns": self.name_columns_,
            "parent": self.parent_,
            "residual": self.residual_,
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
        # Absent from artifacts saved before tag names, aliases and the hierarchy reached the blend (format
        # 1 of the blend features): they load with those features off, as they were trained.
        self.feature_version_ = state.get("feature_version", 1)
        self.aliases_ = state.get("aliases") or {}
        self.name_embeddings_ = state.get("name_embeddings")
        self.name_columns_ = state.get("name_columns")
        self.parent_ = state.get("parent")
        self.residual_ = state.get("residual")
        parts.support = state.get("support")
        parts.mentions = MentionIndex(self.classes_, self.aliases_)
        parts.mention_precision = state["mention_precision"]
        parts.mention_recall = state["mention_recall"]
        parts.prior = state["prior"]
        self.parts_ = parts
        self.blender_ = state["blender"]
