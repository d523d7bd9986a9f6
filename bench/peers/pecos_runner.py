"""Peer: PECOS XR-Linear (``libpecos``) over PECOS's own word + character TF-IDF.

Runs inside ``.bench-cache/venvs/pecos``; see ``_protocol.py``. The recipe is PECOS's README one: TF-IDF
features, PIFA label embeddings, hierarchical k-means label tree, ``XLinearModel.train``, beam search.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as smat
from _protocol import Stopwatch, read_part, runner_args, tag_vocabulary, write_outputs
from pecos.utils.featurization.text.vectorizers import Vectorizer
from pecos.xmc import Indexer, LabelEmbeddingFactory
from pecos.xmc.xlinear.model import XLinearModel

VECTORIZER = {
    "base_vect_configs": [
        {"ngram_range": [1, 2], "analyzer": "word", "sublinear_tf": True, "max_df_ratio": 0.98},
        {"ngram_range": [2, 5], "analyzer": "char_wb", "sublinear_tf": True, "min_df_cnt": 2},
    ]
}
PREDICT = {"beam_size": 10, "only_topk": 20}


def main() -> None:
    args = runner_args(__doc__.splitlines()[0])
    train = read_part(args.data, "train")
    scored = read_part(args.data, "valid") + read_part(args.data, "test")
    vocabulary = tag_vocabulary(train)
    index = {tag: i for i, tag in enumerate(vocabulary)}
    with Stopwatch() as fit_time:
        config = {"type": "tfidf", "kwargs": {**VECTORIZER, "threads": args.threads}}
        vectorizer = Vectorizer.train([row["text"] for row in train], config=config)
        x_train = vectorizer.predict([row["text"] for row in train])
        rows = [i for i, row in enumerate(train) for _ in row["tags"]]
        cols = [index[tag] for row in train for tag in row["tags"]]
        y_train = smat.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(train), len(vocabulary))
        )
        label_features = LabelEmbeddingFactory.create(y_train, x_train, method="pifa")
        cluster_chain = Indexer.gen(
            label_features, indexer_type="hierarchicalkmeans", seed=args.seed, threads=args.threads
        )
        model = XLinearModel.train(x_train, y_train, C=cluster_chain, threads=args.threads)
    with Stopwatch() as predict_time:
        x_scored = vectorizer.predict([row["text"] for row in scored])
        predicted = model.predict(x_scored, threads=args.threads, **PREDICT).tocsr()
        scores = []
        for i in range(predicted.shape[0]):
            start, end = predicted.indptr[i], predicted.indptr[i + 1]
            scores.append(
                [
                    (vocabulary[j], float(s))
                    for j, s in zip(predicted.indices[start:end], predicted.data[start:end])
                ]
            )
    run_config = {"vectorizer": VECTORIZER, "indexer": "hierarchicalkmeans (PIFA)", **PREDICT}
    write_outputs(args.out, scored, scores, fit_time, predict_time, run_config)


if __name__ == "__main__":
    main()
