"""mlcore.explain on the small samples in tests/data: mentions, neighbours, lexical words, the CLI flag."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlcore.explain import Explanation, explain, explain_many
from mlcore.postprocess import PostProcessConfig
from mlcore.settings import RuntimeSettings
from mlcore.tagger import get_tagger, load_tagger
from mlcore.tagger.mentions import tag_surface
from mlcore.text import lexical_tokens, normalize_text, product_text
from mlcore.types import ProductRecord
from tests.mlcore.conftest import EN_FASHION

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fashion_lexical(en_fashion):
    return get_tagger("lexical").fit(en_fashion[:180])


@pytest.fixture(scope="module")
def zh_lexical(zh_titles):
    return get_tagger("lexical").fit(zh_titles[:240])


def _check_mentions(record: ProductRecord, explanation: Explanation) -> None:
    """Every mention is a real span of its field and names the tag (its words, or them run together or
    in the singular)."""
    surfaces = {tag_surface(explanation.tag)}
    for m in explanation.mentions:
        text = getattr(record, m.field)
        assert 0 <= m.start < m.end <= len(text)
        assert text[m.start : m.end] == m.text
        assert m.surface in surfaces
        found, surface = normalize_text(m.text), m.surface
        if m.exact:
            assert lexical_tokens(found) == lexical_tokens(surface) or (
                found.replace(" ", "") == surface.replace(" ", "")  # a Chinese substring
            )
        else:
            # Written together ("T-Shirts" for tshirts) or in the singular ("Dress" for dresses,
            # "Accessory" for accessories).
            written, named = "".join(lexical_tokens(found)), "".join(lexical_tokens(surface))
            assert named.startswith(written[:-1])


def test_mentions_are_spans_of_the_original_title_that_name_the_tag(fashion_lexical, en_fashion):
    checked = 0
    for record in en_fashion[180:]:
        for explanation in explain_many(fashion_lexical, [record], [list(record.tags)])[0]:
            _check_mentions(record, explanation)
            checked += len(explanation.mentions)
            if explanation.mentions and explanation.mentions[0].field == "title":
                assert explanation.summary == f'"{explanation.mentions[0].text}" in the title'
    assert checked >= 60  # colours, genders and product types are in most of these titles

    # Offsets are in the ORIGINAL text, whatever normalisation changed: full-width letters, accents
    # written as combining marks, upper case, a compound written with a hyphen, a plural tag.
    title = "Ｒｏａｄｓｔｅｒ Wome\u0301n BLACK Cotton T-Shirt and Dress"
    record = ProductRecord(id="x", title=title)
    by_tag = {e.tag: e for e in explain_many(fashion_lexical, [record], [["colour:black", "tshirts"]])[0]}
    black = by_tag["colour:black"].mentions
    assert [(m.text, m.exact) for m in black] == [("BLACK", True)]
    assert title[black[0].start : black[0].end] == "BLACK"
    tshirt = by_tag["tshirts"].mentions
    assert [(m.text, m.exact) for m in tshirt] == [("T-Shirt", False)]
    if "dresses" in fashion_lexical.classes_:
        assert [m.text for m in explain(fashion_lexical, record, "dresses").mentions] == ["Dress"]
    brand = ProductRecord(id="y", title="Slim fit jeans", brand="Roadster", description="A  Black denim.")
    mentions = explain(fashion_lexical, brand, "colour:black").mentions
    assert [(m.field, m.text) for m in mentions] == [("description", "Black")]


def test_lexical_words_come_from_the_products_text_and_push_the_tag_up(fashion_lexical, en_fashion):
    seen = 0
    for record in en_fashion[180:220]:
        text = normalize_text(product_text(record))
        suggested = [s.tag for s in fashion_lexical.suggest([record], top_k=10)[0]]
        for explanation in explain_many(fashion_lexical, [record], [suggested], max_items=4)[0]:
            assert len(explanation.lexical) <= 4
            weights = [t.weight for t in explanation.lexical]
            assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
            for term in explanation.lexical:
                assert all(piece in text for piece in term.term.split(" ")), (term, record.title)
                seen += 1
            assert explanation.neighbours == ()  # the lexical tagger keeps no neighbour index
            assert bool(explanation.summary) == (not explanation.empty)
    assert seen > 100
    # The colour's own word is the strongest lexical reason for a colour the title names.
    record = ProductRecord(id="z", title="Puma Men Black Running Shoes")
    assert explain(fashion_lexical, record, "colour:black").lexical[0].term == "black"


def test_chinese_titles(zh_lexical, zh_titles):
    mentioned = 0
    for record in zh_titles[240:]:
        explanations = explain_many(zh_lexical, [record], [list(record.tags)])[0]
        for explanation in explanations:
            _check_mentions(record, explanation)
            for m in explanation.mentions:
                assert normalize_text(m.text).replace(" ", "") == tag_surface(explanation.tag).replace(
                    " ", ""
                )
                mentioned += 1
            compact = normalize_text(record.title).replace(" ", "")
            for term in explanation.lexical:
                assert term.term.replace(" ", "") in compact  # jieba words of this title
    assert mentioned >= 30
    record = ProductRecord(id="zh", title="秋季新款\u3000男装上衣 修身T恤")  # an ideographic space
    explanation = explain(zh_lexical, record, "品类:上衣")
    assert [(m.text, m.start, m.end) for m in explanation.mentions] == [("上衣", 7, 9)]
    assert explanation.summary == '"上衣" in the title'
    # The keyword tagger cites mentions only.
    keyword = get_tagger("keyword").fit(zh_titles[:240])
    only = explain(keyword, record, "品类:上衣")
    assert only.mentions == explanation.mentions and not only.lexical and not only.neighbours


def test_unknown_tag_gets_an_empty_explanation_and_aliases_count(fashion_lexical, en_fashion):
    record = en_fashion[200]
    unknown = explain(fashion_lexical, record, "no-such:tag")
    assert unknown == Explanation(tag="no-such:tag", known=False) and unknown.empty
    assert unknown.to_dict() == {
        "tag": "no-such:tag",
        "known": False,
        "summary": "",
        "mentions": [],
        "neighbours": [],
        "lexical": [],
    }
    # A canonical tag the model knows only through an alias: its alias's column and words count.
    aliased = copy.copy(fashion_lexical)
    aliased.postprocess = PostProcessConfig(aliases={"colour:black": "colour:noir"})
    title = ProductRecord(id="a", title="Nike Men Black Shoes")
    noir = explain(aliased, title, "colour:noir")
    assert noir.known and [m.text for m in noir.mentions] == ["Black"] and noir.lexical
    assert not explain(fashion_lexical, title, "colour:noir").known  # the shared model is untouched

    explanations = explain_many(fashion_lexical, [record, title], [["colour:black", "x"], []])
    assert [len(row) for row in explanations] == [2, 0]
    assert explanations[0][0] == explain(fashion_lexical, record, "colour:black")
    json.dumps([e.to_dict() for e in explanations[0]])
    with pytest.raises(ValueError, match="tag lists"):
        explain_many(fashion_lexical, [record], [])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlcore", "--quiet", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_predict_explain_adds_an_explain_object_to_each_tag(tmp_path):
    run = _cli("train", "--train", str(EN_FASHION), "--out", str(tmp_path / "m"), "--tagger", "lexical")
    assert run.returncode == 0, run.stderr
    outputs = {}
    for flags in ((), ("--explain",)):
        out = tmp_path / f"predicted{len(flags)}.jsonl"
        model, data = str(tmp_path / "m"), str(EN_FASHION)
        run = _cli("predict", "--model", model, "--input", data, "--output", str(out), *flags)
        assert run.returncode == 0, run.stderr
        outputs[bool(flags)] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    plain, explained = outputs[False], outputs[True]
    assert len(plain) == len(explained) == 240
    assert all("explain" not in t for row in plain for t in row["tags"])
    for row in explained:
        assert set(row) == {"id", "tags"}
        for tag in row["tags"]:
            assert set(tag) == {"tag", "score", "selected", "explain"}
            assert set(tag["explain"]) == {"known", "summary", "mentions", "neighbours", "lexical"}
            assert tag["explain"]["known"] is True and tag["explain"]["neighbours"] == []
    # Apart from the added objects, the output is what predict writes without the flag.
    stripped = [
        {**row, "tags": [{k: v for k, v in t.items() if k != "explain"} for t in row["tags"]]}
        for row in explained
    ]
    assert stripped == plain
    first = explained[0]["tags"]
    assert any(t["explain"]["mentions"] for t in first) and all(t["explain"]["lexical"] for t in first[:3])


# ------------------------------------------------------------------------------- the default tagger
@pytest.fixture(scope="module")
def toys_default(en_toys, tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-default")
    runtime = RuntimeSettings(cache_dir=root / "embeddings", device="cpu")
    tagger = get_tagger("default", hidden=64, epochs=8, max_length=32, runtime=runtime).fit(en_toys[:240])
    tagger.save(root / "model")
    return root, runtime, load_tagger(root / "model", runtime=runtime)


@pytest.mark.slow
def test_default_tagger_cites_similar_training_products_that_carry_the_tag(toys_default, en_toys):
    _, _, model = toys_default
    train = {r.id: r for r in en_toys[:240]}
    test = en_toys[240:]
    suggestions = model.suggest(test, top_k=15)
    explanations = explain_many(model, test, [[s.tag for s in row] for row in suggestions])
    cited = voted = 0
    for record, row in zip(test, explanations):
        for explanation in row:
            _check_mentions(record, explanation)
            sims = [n.similarity for n in explanation.neighbours]
            assert sims == sorted(sims, reverse=True) and len(sims) <= 3
            for n in explanation.neighbours:
                assert explanation.tag in train[n.id].tags and n.title == train[n.id].title
                assert n.id != record.id and n.rank >= 1
                cited += 1
                voted += n.rank <= model.config.knn_k
            assert explanation.neighbours and explanation.summary  # every known tag has carriers
    assert cited > 500 and voted > 100
    # A training product is not cited as its own neighbour.
    own = en_toys[0]
    for explanation in explain_many(model, [own], [list(own.tags)])[0]:
        assert own.id not in {n.id for n in explanation.neighbours}


@pytest.mark.slow
def test_default_artifact_saved_before_neighbour_titles_still_loads_and_explains(toys_default, en_toys):
    root, runtime, model = toys_default
    old = root / "model-before-titles"
    shutil.copytree(root / "model", old)
    with open(old / "parts.pkl", "rb") as fh:
        state = pickle.load(fh)
    assert len(state["index_ids"]) == len(state["index_titles"]) == 240
    del state["index_ids"], state["index_titles"]
    with open(old / "parts.pkl", "wb") as fh:
        pickle.dump(state, fh, protocol=5)
    from_old = load_tagger(old, runtime=runtime)
    test = en_toys[240:260]
    assert np.array_equal(from_old.predict_proba(test), model.predict_proba(test))
    tags = [[s.tag for s in row] for row in model.suggest(test, top_k=10)]
    new_rows, old_rows = explain_many(model, test, tags), explain_many(from_old, test, tags)
    for new_row, old_row in zip(new_rows, old_rows):
        for new, was in zip(new_row, old_row):
            assert was.mentions == new.mentions and was.lexical == new.lexical
            assert [n.similarity for n in was.neighbours] == [n.similarity for n in new.neighbours]
            assert all(n.id is None and n.title is None for n in was.neighbours)
    assert any(e.neighbours for row in old_rows for e in row)
