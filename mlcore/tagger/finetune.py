"""Full fine-tuning of the base encoder as a multi-label classifier (the GPU option of the default tagger).

``AutoModelForSequenceClassification`` with ``problem_type="multi_label_classification"`` (BCE over
all tags), the label maps stored in the checkpoint config, AdamW with linear warm-up/decay, bf16
autocast on CUDA, early stopping on the validation loss. On a CPU this runs at ~10 examples/s, which
is why the default tagger only enables it when CUDA is present.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import sparse

__all__ = ["FineTunedClassifier"]


class FineTunedClassifier:
    """A fine-tuned encoder + classification head; ``predict_proba(texts)`` -> (n, n_classes)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int, device: torch.device) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device

    @classmethod
    def train(
        cls,
        base_model: str,
        classes: Sequence[str],
        texts: Sequence[str],
        y: sparse.csr_matrix,
        *,
        valid: tuple[Sequence[str], sparse.csr_matrix] | None = None,
        epochs: int = 4,
        lr: float = 5e-5,
        batch_size: int = 32,
        max_length: int = 128,
        device: torch.device,
        seed: int = 13,
        on_epoch: Callable[[int, int], None] | None = None,
        local_files_only: bool = True,
    ) -> tuple[FineTunedClassifier, int]:
        """Returns (classifier, best epoch). Without ``valid`` it trains exactly ``epochs`` epochs.
        ``local_files_only``: load ``base_model`` from disk / the local Hugging Face cache only."""
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            get_linear_schedule_with_warmup,
        )

        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=local_files_only)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            local_files_only=local_files_only,
            num_labels=len(classes),
            problem_type="multi_label_classification",
            id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)},
        ).to(device)
        clf = cls(model, tokenizer, max_length=max_length, device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        steps = max(1, math.ceil(len(texts) / batch_size) * epochs)
        sched = get_linear_schedule_with_warmup(opt, int(0.06 * steps), steps)
        rng = np.random.default_rng(seed)
        y = sparse.csr_matrix(y)
        best_loss, best_state, best_epoch = math.inf, None, epochs
        for epoch in range(epochs):
            model.train()
            order = rng.permutation(len(texts))
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = clf._tokenize([texts[i] for i in idx])
                labels = torch.from_numpy(y[idx].toarray()).to(device)
                with clf._autocast():
                    logits = model(**batch).logits
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs)
            if valid is not None:
                v_texts, v_y = valid
                proba = clf.predict_proba(v_texts)
                target = sparse.csr_matrix(v_y).toarray()
                p = np.clip(proba, 1e-6, 1 - 1e-6)
                v_loss = float(-(target * np.log(p) + (1 - target) * np.log(1 - p)).sum(axis=1).mean())
                if v_loss < best_loss - 1e-4:
                    best_loss, best_epoch = v_loss, epoch + 1
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                elif epoch + 1 - best_epoch >= 2:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return clf, best_epoch

    def _autocast(self) -> Any:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _tokenize(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            [t or " " for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        self.model.eval()
        n_classes = self.model.config.num_labels
        out = np.zeros((len(texts), n_classes), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                with self._autocast():
                    logits = self.model(**self._tokenize([texts[i] for i in idx])).logits
                out[idx] = torch.sigmoid(logits.float()).cpu().numpy()
        return out

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def load(cls, directory: Path, *, max_length: int, device: torch.device) -> FineTunedClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        # The artifact's own checkpoint directory: nothing to download.
        model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True).to(
            device
        )
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        return cls(model, tokenizer, max_length=max_length, device=device)
