"""Text representations shared by the diversity strategies and cold start: TF-IDF reduced by SVD."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlcore.selection.base import _unit_rows


def text_features(texts: Sequence[str], *, dims: int = 64, seed: int = 0) -> np.ndarray:
    """Dense TF-IDF vectors (words, jieba-segmented for Chinese, plus character n-grams) reduced by SVD."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is {type(text).__name__}, expected str")
    words = TfidfVectorizer(tokenizer=_words, token_pattern=None, lowercase=True, min_df=1, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=50_000, sublinear_tf=True)
    matrix = make_union(words, chars).fit_transform(texts)
    n_components = min(dims, matrix.shape[1] - 1, len(texts) - 1)
    if n_components < 1:
        return _unit_rows(matrix.toarray().astype(np.float32))
    reduced = TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(matrix)
    return _unit_rows(reduced).astype(np.float32)


def _words(text: str) -> list[str]:
    """Word tokens as the lexical tagger sees them (jieba-segmented Chinese runs)."""
    from mlcore.text import lexical_tokens, normalize_text

    return lexical_tokens(normalize_text(text).casefold())
