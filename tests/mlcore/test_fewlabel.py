"""Few labels (issue 19): the taxonomy reaching the tagger, the hierarchy, tag names as a prior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from mlcore.tagger import get_tagger, lexical, load_tagger
from mlcore.tagger.features import LexicalFeaturizer, reuse_word_tokens, word_analyzer
from mlcore.tagger.hierarchy import hierarchy_features, learn_parents, parents_from_map
from mlcore.tagger.mentions import MentionIndex
from mlcore.types import ProductRecord, Taxonomy


def test_taxonomy_checks_its_maps_by_name():
    with pytest.raises(ValueError, match="'shoes'.*not one of its tags"):
        Taxonomy(tags=("apparel",), parents={"shoes": "apparel"})
    with pytest.raises(ValueError, match="parent 'footwear' of 'apparel'"):
        Taxonomy(tags=("apparel",), parents={"apparel": "footwear"})
    with pytest.raises(ValueError, match="listed twice"):
        Taxonomy(tags=("a", "a"))
    with pytest.raises(ValueError, match="its own parent"):
        Taxonomy(tags=("a",), parents={"a": "a"})
    with pytest.raises(ValueError, match="list of names"):
        Taxonomy(tags=("a",), aliases={"a": "b"})
    flat = Taxonomy.from_names(["b", "a", "b"])
    assert flat.tags == ("b", "a") and flat.parents == {}


def test_learn_parents_recovers_a_category_path_and_never_cycles():
    classes = ["apparel", "bottomwear", "skirts", "jeans", "colour:white", "twin-a", "twin-b"]
    rows = [
        ["apparel", "bottomwear", "skirts", "colour:white"],
        ["apparel", "bottomwear", "skirts"],
        ["apparel", "bottomwear", "jeans"],
        ["apparel", "bottomwear", "jeans", "colour:white"],
        ["apparel", "colour:white", "twin-a", "twin-b"],
        ["apparel", "twin-a", "twin-b"],
    ]
    y = sparse.csr_matrix([[t in r for t in classes] for r in rows], dtype=np.float32)
    parent = learn_parents(y)
    name = {j: (classes[p] if p >= 0 else None) for j, p in enumerate(parent)}
    assert name[classes.index("skirts")] == "bottomwear"
    assert name[classes.index("jeans")] == "bottomwear"
    assert name[classes.index("bottomwear")] == "apparel"
    assert name[classes.index("apparel")] is None
    assert name[classes.index("colour:white")] == "apparel"  # on every white product, more frequent
    # Two tags that always come together: one is the other's parent, not both.
    a, b = classes.index("twin-a"), classes.index("twin-b")
    assert (parent[a] == b) != (parent[b] == a)
    for j in range(len(classes)):  # a forest: every ancestor walk ends
        seen, k = set(), j
        while k >= 0:
            assert k not in seen
            seen.add(k)
            k = parent[k]


def test_parents_from_map_and_relatives_scores():
    classes = ["apparel", "jeans", "skirts", "shoes"]
    parent = parents_from_map(classes, {"jeans": "apparel", "skirts": "apparel", "shoes": None, "x": "y"})
    assert parent.tolist() == [-1, 0, 0, -1]
    base = np.array([[0.9, 0.7, 0.2, 0.1], [0.3, 0.1, 0.6, 0.5]], dtype=np.float32)
    parent_score, child_max, sibling_max = hierarchy_features(base, parent)
    assert parent_score[:, 1].tolist() == pytest.approx([0.9, 0.3]) and parent_score[0, 0] == 0
    assert child_max[:, 0].tolist() == pytest.approx([0.7, 0.6]) and child_max[0, 3] == 0
    assert sibling_max[0, 1] == pytest.approx(0.2) and sibling_max[0, 2] == pytest.approx(0.7)
    assert sibling_max[1, 2] == pytest.approx(0.1) and sibling_max[0, 3] == 0


def test_mention_index_counts_aliases():
    index = MentionIndex(["colour:white", "category:sneakers"], {"category:sneakers": ["trainers", "球鞋"]})
    rec = ProductRecord(id="1", title="Nike Air White Trainers")
    assert index.find("nike air white trainers") == {0, 1}
    assert index.matrix([rec]).toarray().tolist() == [[1.0, 1.0]]
    assert index.find("新款球鞋") == {1}


def test_mention_index_flags_a_tag_named_only_inside_a_longer_mention():
    classes = [
        "品类:滑板",
        "品类:滑板车",
        "colour:blue",
        "colour:light blue",
        "type:shirt",
        "type:dress shirt",
    ]
    index = MentionIndex(classes)
    names = lambda found: sorted(classes[j] for j in found)  # noqa: E731
    # "滑板" occurs only within "滑板车"; "blue" and "shirt" only within "light blue" and "dress shirt".
    assert names(index.covered("儿童滑板车")) == ["品类:滑板"]
    assert names(index.covered("light blue dress shirt")) == ["colour:blue", "type:shirt"]
    # A mention of its own anywhere in the text keeps the tag uncovered; a tag never covers itself.
    assert names(index.covered("滑板 滑板车")) == []
    assert names(index.covered("blue shirt, light blue")) == []
    assert names(index.covered("blue dress shirt")) == ["type:shirt"]
    assert index.find("儿童滑板车") == {0, 1}
    rec = ProductRecord(id="1", title="Light Blue Dress Shirt")
    assert index.covered_matrix([rec]).toarray().tolist() == [[0, 0, 1, 0, 1, 0]]


def test_keyword_tagger_suggests_a_taxonomy_tag_with_no_example():
    records = [
        ProductRecord(id=str(i), title=f"Blue Shirt {i}", tags=("colour:blue", "shirts")) for i in range(5)
    ] + [ProductRecord(id="9", title="Black Jeans", tags=("jeans",))]
    taxonomy = Taxonomy(
        tags=("colour:blue", "shirts", "jeans", "colour:red"), aliases={"colour:red": ("crimson",)}
    )
    tagger = get_tagger("keyword").fit(records, taxonomy=taxonomy)
    assert "colour:red" in tagger.classes_
    picked = tagger.suggest([ProductRecord(id="x", title="Crimson Shirts")])[0]
    assert {s.tag for s in picked if s.selected} >= {"colour:red", "shirts"}
    without = get_tagger("keyword").fit(records)
    assert "colour:red" not in without.classes_


@pytest.mark.slow
def test_default_tagger_scores_a_tag_it_has_no_example_of(en_fashion, runtime, tmp_path):
    # "colour:white" is in the taxonomy but no training product is white (a tag just added, products of a
    # kind not reviewed yet): the tagger knows only its name. It must still score it higher where the
    # product is white.
    held = "colour:white"
    train = [r for r in en_fashion[:160] if held not in r.tags]
    test = en_fashion[160:]
    taxonomy = Taxonomy.from_names(sorted({t for r in en_fashion for t in r.tags}))
    tagger = get_tagger("default", hidden=64, epochs=8, max_length=32, runtime=runtime)
    tagger.fit(train, taxonomy=taxonomy)
    assert held in tagger.classes_
    assert tagger.info_["cross_fitted"] is True and tagger.info_["n_classes_without_example"] >= 1
    proba = tagger.predict_proba(test)
    j = tagger.classes_.index(held)
    white = np.array([held in r.tags for r in test])
    assert white.any() and (~white).any()
    assert proba[white, j].mean() > 3 * proba[~white, j].mean()
    # Its name alone (encoder space) already points at the white products.
    names = tagger._name_similarity(tagger._embed(test))
    assert names[white, j].mean() > names[~white, j].mean() + 0.03
    # A tag outside a product's candidates keeps a small out-of-fold rate, never enough to be selected.
    assert tagger.residual_ is not None and tagger.residual_.min() > 0 and tagger.residual_.max() <= 0.02
    assert proba.min() > 0 and (tagger.residual_ < tagger.thresholds_).all()
    # The folds read the mention matrix found once for all records: the same scores as from the records.
    index = np.arange(len(train))[::-3]
    subset = [train[i] for i in index]
    emb = tagger._embed(subset)
    shared = tagger.parts_.mentions.matrix(train)[index]
    from_records = tagger._part_scores(tagger.parts_, subset, emb)
    from_shared = tagger._part_scores(tagger.parts_, subset, emb, shared)
    assert np.array_equal(from_records["mentions"], from_shared["mentions"])
    assert from_shared["mentions"].sum() > 0
    tagger.save(tmp_path / "model")
    again = load_tagger(tmp_path / "model", runtime=runtime)
    assert np.array_equal(again.predict_proba(test), proba)
    # Without the taxonomy the tag does not exist for the model.
    plain = get_tagger("default", hidden=64, epochs=8, max_length=32, runtime=runtime).fit(train)
    assert held not in plain.classes_


def test_reused_word_tokens_change_no_feature(en_fashion, zh_titles):
    # Cross-fitting featurises the same texts once per fold: inside reuse_word_tokens() each text is
    # tokenised once, and every matrix must be exactly what featurising without it gives.
    for records in (en_fashion[:60], zh_titles[:60]):
        folds = [records[:40], records[20:], records]
        plain = [LexicalFeaturizer().fit_transform(fold) for fold in folds]
        with reuse_word_tokens():
            reused = [LexicalFeaturizer().fit_transform(fold) for fold in folds]
            again = word_analyzer("red cotton shirt")
            assert word_analyzer("red cotton shirt") is again  # worked out once
        for a, b in zip(plain, reused):
            assert a.shape == b.shape and abs(a - b).max() == 0
    assert word_analyzer("red cotton shirt") is not word_analyzer("red cotton shirt")  # nothing kept after


def test_one_vs_rest_direct_liblinear_gives_logistic_regressions_weights(en_fashion, monkeypatch):
    # OneVsRestLinear calls liblinear the way LogisticRegression.fit does, without its per-fit checks: the
    # weights must be exactly LogisticRegression's (same solver, inputs and random draws).
    assert lexical._fit_liblinear is not None  # the installed scikit-learn has the fast path
    records = en_fashion[:80]
    x = LexicalFeaturizer().fit_transform(records)
    classes = sorted({t for r in records for t in r.tags})
    y = sparse.csr_matrix(np.array([[t in r.tags for t in classes] for r in records], dtype=np.float32))
    np.random.seed(0)
    direct = lexical.OneVsRestLinear(n_jobs=1, min_negatives=30).fit(x, y)
    monkeypatch.setattr(lexical, "_fit_liblinear", None)
    np.random.seed(0)
    checked = lexical.OneVsRestLinear(n_jobs=1, min_negatives=30).fit(x, y)
    assert direct.coef_.nnz > 0
    assert (direct.coef_ != checked.coef_).nnz == 0
    assert np.array_equal(direct.intercept_, checked.intercept_)


@pytest.mark.slow
def test_default_tagger_of_the_previous_blend_features_still_suggests(
    zh_titles, runtime, tmp_path, monkeypatch
):
    # A model version trained before the covered-mention feature (blend feature set 2) keeps serving
    # after an upgrade: it loads with its own feature set and scores as it did when it was saved.
    from mlcore.tagger import hybrid

    monkeypatch.setattr(hybrid, "_FEATURE_VERSION", 2)
    old = get_tagger("default", hidden=32, epochs=4, max_length=32, runtime=runtime).fit(zh_titles[:120])
    old.save(tmp_path / "v2")
    monkeypatch.undo()
    loaded = load_tagger(tmp_path / "v2", runtime=runtime)
    assert old.feature_version_ == loaded.feature_version_ == 2
    test = zh_titles[120:150]
    assert np.allclose(loaded.predict_proba(test), old.predict_proba(test), atol=1e-6)
    new = get_tagger("default", hidden=32, epochs=4, max_length=32, runtime=runtime).fit(zh_titles[:120])
    assert new.feature_version_ == 3
    assert new.blender_.n_features_in_ == loaded.blender_.n_features_in_ + 1


def test_cross_fitting_reads_each_name_for_mentions_once(zh_titles, runtime, monkeypatch):
    # The mentions and the covered mentions depend on the classes only: one pass over the labelled texts
    # serves every fold (the folds used to rescan their held-out texts for the covered flags).
    scanned: list[int] = []
    original = MentionIndex.matrices

    def counting(self, records, *, covered=True):
        scanned.append(len(records))
        return original(self, records, covered=covered)

    monkeypatch.setattr(MentionIndex, "matrices", counting)
    tagger = get_tagger("default", hidden=32, epochs=4, max_length=32, runtime=runtime).fit(zh_titles[:90])
    assert tagger.info_["cross_fitted"]
    assert scanned == [90]
    monkeypatch.undo()
    scores = tagger.predict_proba(zh_titles[90:100])
    assert scores.shape == (10, len(tagger.classes_))
