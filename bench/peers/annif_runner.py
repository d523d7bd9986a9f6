"""Peer: Annif 1.4 (``tfidf``, ``omikuji`` or ``fasttext`` backend), trained and queried in-process.

Runs inside ``.bench-cache/venvs/annif``; see ``_protocol.py``. Annif's analyzers need NLTK's punkt
sentence model, which cannot be downloaded here. Product texts are short, so one text is one sentence:
``sent_tokenize`` returns the text whole and ``word_tokenize`` runs with ``preserve_line=True`` (the
Treebank word tokenizer alone, no punkt), and ``nltk.download`` is never attempted. The vocabulary
(one subject per tag) and the training corpus are Annif's TSV formats; training goes through Annif's own
command line (in this process, so the patch applies), suggestions through its project API.

Settings are Annif's documented example configurations: the tfidf and omikuji (Parabel-style defaults)
backends as in the Annif wiki, fastText as the wiki's example but with fastText's one-vs-all loss
(``loss=ova``) for multi-label tags. English text uses ``snowball(english)``; Chinese text (already
segmented by jieba) uses ``simple`` with ``token_min_length=1``, since Chinese words are one or two
characters and Annif's default minimum of three would drop almost all of them.
"""

from __future__ import annotations

import os
import re

from _protocol import Stopwatch, read_part, runner_args, tag_vocabulary, write_outputs

BACKEND_SETTINGS = {
    "tfidf": {},
    "omikuji": {},
    "fasttext": {"dim": 500, "lr": 0.25, "epoch": 30, "loss": "ova", "chunksize": 24},
}
LIMIT = 100
CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


def patch_nltk() -> None:
    import nltk
    import nltk.tokenize

    treebank_word_tokenize = nltk.tokenize.word_tokenize

    def sent_tokenize(text: str, language: str = "english") -> list[str]:
        return [text]

    def word_tokenize(text: str, language: str = "english", preserve_line: bool = True) -> list[str]:
        return treebank_word_tokenize(text, language=language, preserve_line=True)

    def no_download(*args: object, **kwargs: object) -> bool:
        return False

    nltk.tokenize.sent_tokenize = nltk.sent_tokenize = sent_tokenize
    nltk.tokenize.word_tokenize = nltk.word_tokenize = word_tokenize
    nltk.download = no_download


def main() -> None:
    args = runner_args(
        __doc__.splitlines()[0], [("--backend", {"choices": sorted(BACKEND_SETTINGS), "required": True})]
    )
    patch_nltk()
    import annif
    import annif.registry
    from annif.cli import cli
    from annif.corpus import Document

    train = read_part(args.data, "train")
    scored = read_part(args.data, "valid") + read_part(args.data, "test")
    chinese = sum(bool(CJK.search(row["text"])) for row in train) > len(train) / 2
    language = "zh" if chinese else "en"
    analyzer = "simple(token_min_length=1)" if chinese else "snowball(english)"
    vocabulary = tag_vocabulary(train)

    work = os.path.abspath(args.out)
    os.environ["ANNIF_DATADIR"] = os.path.join(work, "annif-data")
    os.environ["ANNIF_PROJECTS"] = os.path.join(work, "projects.cfg")
    settings = {"limit": LIMIT, **BACKEND_SETTINGS[args.backend]}
    if args.backend == "fasttext":
        settings["thread"] = args.threads
    with open(os.environ["ANNIF_PROJECTS"], "w", encoding="utf-8") as fh:
        fh.write(f"[bench]\nname=bench\nlanguage={language}\nbackend={args.backend}\n")
        fh.write(f"analyzer={analyzer}\nvocab=tags\n")
        fh.writelines(f"{key}={value}\n" for key, value in settings.items())

    uri = "http://tagstudio.invalid/tag/{}".format
    vocab_path = os.path.join(work, "vocab.tsv")
    with open(vocab_path, "w", encoding="utf-8") as fh:
        fh.writelines(f"<{uri(i)}>\t{tag}\n" for i, tag in enumerate(vocabulary))
    index = {tag: i for i, tag in enumerate(vocabulary)}
    train_path = os.path.join(work, "train.tsv")
    with open(train_path, "w", encoding="utf-8") as fh:
        for row in train:
            subjects = " ".join(f"<{uri(index[tag])}>" for tag in row["tags"])
            fh.write(f"{row['text'] or '-'}\t{subjects}\n")

    def annif_cli(*argv: str) -> None:
        try:
            cli.main(list(argv), standalone_mode=False)
        except SystemExit as exc:  # a click command may still call sys.exit
            if exc.code:
                raise

    with Stopwatch() as fit_time:
        annif_cli("load-vocab", "--language", language, "tags", vocab_path)
        annif_cli("train", "bench", train_path, "--jobs", str(args.threads))
    with Stopwatch() as predict_time:
        app = annif.create_flask_app()
        with app.app_context():
            project = annif.registry.get_project("bench")
            tag_of = {}
            for subject_id in range(len(project.subjects)):
                subject_uri = project.subjects[subject_id].uri
                tag_of[subject_id] = vocabulary[int(subject_uri.rsplit("/", 1)[1])]
            scores = []
            for start in range(0, len(scored), 256):
                batch = project.suggest([Document(text=row["text"]) for row in scored[start : start + 256]])
                array = batch.array.tocsr()
                for i in range(array.shape[0]):
                    row = array[[i]]
                    scores.append([(tag_of[int(j)], float(s)) for j, s in zip(row.indices, row.data)])
    run_config = {"backend": args.backend, "analyzer": analyzer, "language": language, **settings}
    write_outputs(args.out, scored, scores, fit_time, predict_time, run_config)


if __name__ == "__main__":
    main()
