"""The sensor heads: fitted on the proxy genres' windows (clean and training copies), read by the sensors as the
bundle's third output, judged on held-out clips beside the raw tag they replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.spec import musicnn_spec
from trainer.data.dataset import Clip
from trainer.tagger.embed import WindowEmbeddings
from trainer.tagger.export import N_TAGS, TAGS
from trainer.tagger.fit import TaggerData
from trainer.tagger.tag_sensors import HEAD_NAMES, READABLE, fit_sensors, readable_scores, tags_meta

GENRES = ("blues", "classical", "disco", "hiphop", "jazz", "pop")
DIM = 6


def _data(seed: int = 0) -> TaggerData:
    """Embeddings whose first dimension says 'instrumental' and second 'danceable'; the raw tags are noise."""
    rng = np.random.default_rng(seed)
    clips, rows = [], {}
    for i in range(48):
        genre = GENRES[i % len(GENRES)]
        clips.append(Clip(f"{genre}.{i:05d}", genre, Path(f"/nonexistent/{i}.wav"), f"{i:064x}"))
        for variant in ("clean", "aug/1", "eval/typical"):
            r = rng.standard_normal((5, N_TAGS + DIM)).astype(np.float32)
            r[:, : N_TAGS] = rng.uniform(0, 1, (5, N_TAGS))
            r[:, N_TAGS] += 3.0 if genre == "classical" else -3.0
            r[:, N_TAGS + 1] += 3.0 if genre in ("disco", "hiphop", "pop") else -3.0
            rows[(clips[-1].clip_id, variant)] = r
    y = np.array([GENRES.index(c.genre) for c in clips], dtype=np.int64)
    return TaggerData(clips, GENRES, y, WindowEmbeddings(rows, 0, len(rows), {}), musicnn_spec(GENRES, 1.5))


def test_heads_learn_the_proxies_the_raw_tags_do_not_carry() -> None:
    data = _data()
    train_idx, test_idx = np.arange(0, 36, dtype=np.int64), np.arange(36, 48, dtype=np.int64)
    heads, params, report = fit_sensors(data, train_idx, test_idx, ["aug/1"], ["typical"], seed=0, c=0.05)
    assert list(heads) == ["vocals", "danceable"]
    assert params["vocals"].tag == "head/instrumental" and params["danceable"].tag == "head/danceable"
    for name in ("vocals", "danceable"):
        for cond in ("clean", "typical"):
            assert report[name]["held_out"][cond]["accuracy"] == 1.0, (name, cond)
            assert report[name]["raw_tag"]["held_out"][cond]["auc"] < 0.9  # noise: the comparison row
    # Vocals proxies: classical vs pop, hip-hop, disco here (country, reggae absent): 2 + 6 test clips.
    assert report["vocals"]["test_clips"] == 8 and report["danceable"]["test_clips"] == 12


def test_the_third_output_follows_the_tags_in_the_order_model_json_names() -> None:
    data = _data(1)
    heads, params, _ = fit_sensors(data, np.arange(36, dtype=np.int64), np.arange(36, 48, dtype=np.int64), [], [],
                                   seed=0, c=0.05)
    rows = data.emb.get(data.clip_ids[1])  # classical: instrumental, not danceable
    scores = readable_scores(rows, heads)
    assert scores.shape == (5, len(READABLE)) and READABLE[: N_TAGS] == TAGS
    np.testing.assert_array_equal(scores[:, :N_TAGS], rows[:, :N_TAGS])
    assert (scores[:, READABLE.index("head/instrumental")] > 0.5).all()
    assert (scores[:, READABLE.index("head/danceable")] < 0.5).all()
    meta = tags_meta(params, heads)
    assert meta["output"] == 1 and meta["heads"] == {"output": 2, "names": list(HEAD_NAMES)}
    assert meta["sensors"]["vocals"]["tag"] == "head/instrumental"
    with pytest.raises(ValueError, match="third output"):
        tags_meta(params, {"danceable": heads["danceable"]})
