from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from mlcore.embeddings import EmbeddingCache, TextEncoder, base_model_setting, embed_texts, text_key


def _writer(directory: str, worker: int, start: object) -> None:
    start.wait()  # every writer opens the new cache at the same moment
    cache = EmbeddingCache(directory)
    rng = np.random.default_rng(worker)
    for batch in range(5):
        items = [(text_key(f"w{worker}-b{batch}-{i}"), rng.random(8).astype(np.float32)) for i in range(50)]
        cache.put_many("fp", items)


def _open_at_once(directory, writers: int) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(writers)
    procs = [ctx.Process(target=_writer, args=(str(directory), w, start)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * writers


def test_cache_is_keyed_by_fingerprint_and_safe_for_several_writers(tmp_path):
    # Opening a new file at once used to fail now and then with "database is locked" (switching to
    # WAL deadlocks, and sqlite does not wait there): several rounds make the race likely.
    for round_ in range(4):
        _open_at_once(tmp_path / f"round{round_}", writers=5)
    cache = EmbeddingCache(tmp_path / "round0")
    assert cache.count("fp") == 5 * 5 * 50
    assert cache.count("other-model") == 0
    got = cache.get_many("fp", [text_key("w1-b2-3"), text_key("missing")])
    assert list(got) == [text_key("w1-b2-3")] and got[text_key("w1-b2-3")].shape == (8,)


class CountingEncoder(TextEncoder):
    """The real encoder, counting the texts it had to encode."""

    encoded = 0

    def encode(self, texts, **kwargs):
        CountingEncoder.encoded += len(texts)
        return super().encode(texts, **kwargs)


@pytest.mark.slow
def test_real_encoder_and_cache_encode_each_text_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TAGSTUDIO_BASE_MODEL", "/no/such/model")  # the library reads no environment
    assert base_model_setting().endswith("model")
    encoder = CountingEncoder(max_length=32)
    cache = EmbeddingCache(tmp_path)
    texts = [
        "red cotton t-shirt for men",
        "men's red tee shirt",
        "stainless steel kettle",
        "red cotton t-shirt for men",
    ]
    first = embed_texts(texts, encoder, cache)
    assert CountingEncoder.encoded == 3  # the duplicate text is encoded once
    assert first.shape == (4, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-2)
    assert first[0] @ first[1] > first[0] @ first[2]  # related products are closer
    again = embed_texts(texts, encoder, cache)
    assert CountingEncoder.encoded == 3  # all from the cache
    assert np.array_equal(first, again)
    other = CountingEncoder(max_length=64)  # another length cap is another fingerprint
    assert other.fingerprint != encoder.fingerprint
