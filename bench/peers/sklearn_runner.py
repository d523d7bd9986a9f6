"""Peer: scikit-learn TF-IDF (word 1-2-grams + char_wb 2-5-grams) + one-vs-rest logistic regression.

Runs with the app's own interpreter (scikit-learn is an app dependency); see ``_protocol.py``.
"""

from __future__ import annotations

import numpy as np
from _protocol import Stopwatch, read_part, runner_args, write_outputs
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import MultiLabelBinarizer

# The text is pre-tokenised (tokens joined by spaces), so a word is any run of non-spaces; a one-character
# token (a Chinese word, a size digit) is kept, unlike scikit-learn's default pattern.
CONFIG = {
    "word": {"ngram_range": (1, 2), "min_df": 1, "sublinear_tf": True, "token_pattern": r"\S+"},
    "char_wb": {"ngram_range": (2, 5), "min_df": 2, "sublinear_tf": True},
    "logistic_regression": {"solver": "liblinear", "C": 10.0},
}


def main() -> None:
    args = runner_args(__doc__.splitlines()[0])
    train = read_part(args.data, "train")
    scored = read_part(args.data, "valid") + read_part(args.data, "test")
    with Stopwatch() as fit_time:
        binarizer = MultiLabelBinarizer()
        y = binarizer.fit_transform([row["tags"] for row in train])
        model = make_pipeline(
            FeatureUnion(
                [
                    ("word", TfidfVectorizer(analyzer="word", **CONFIG["word"])),
                    ("char_wb", TfidfVectorizer(analyzer="char_wb", **CONFIG["char_wb"])),
                ]
            ),
            OneVsRestClassifier(
                LogisticRegression(random_state=args.seed, **CONFIG["logistic_regression"]),
                n_jobs=args.threads,
            ),
        )
        model.fit([row["text"] for row in train], y)
    with Stopwatch() as predict_time:
        proba = model.predict_proba([row["text"] for row in scored])
        top = np.argsort(-proba, axis=1)[:, :20]
        tags = binarizer.classes_
        scores = [[(str(tags[j]), float(proba[i, j])) for j in top[i]] for i in range(len(scored))]
    run_config = {
        key: {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        for key, value in CONFIG.items()
    }
    write_outputs(args.out, scored, scores, fit_time, predict_time, run_config)


if __name__ == "__main__":
    main()
