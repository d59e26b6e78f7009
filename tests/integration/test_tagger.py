"""The tagger on the edge: the exported graph (frozen musicnn + head) read through the edge's own front end and
lite runtime, and ``genre-train train --recipe tagger`` end to end. TensorFlow (export, training) runs in
subprocesses: it never enters this process, which loads the models with a lite runtime as the device does."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_audio
from edge.decide.gates import dbfs_from_mean_square
from edge.features import mfcc, window_starts
from edge.runtime import TfliteModel
from edge.spec import musicnn_spec
from tests.support.trainer_cli import run_trainer
from trainer.data.dataset import default_cache_dir
from trainer.tagger.stream import tuning_note

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "teacher" / "musicnn_msd_reference.npz"
GTZAN = SHARED / "gtzan"


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The published tagger exported twice, float16-stored weights and float32 (no level step: what the reference
    holds), and the embedding model as it ships (float16, with the level step)."""
    out = tmp_path_factory.mktemp("tagger")
    code = f"""
        from pathlib import Path
        from trainer.tagger.export import convert
        from trainer.teacher.musicnn import read_checkpoint
        from trainer.teacher.wheel import checkpoint_dir
        variables = read_checkpoint(checkpoint_dir(Path({str(default_cache_dir())!r})))
        Path({str(out / "f16.tflite")!r}).write_bytes(convert(variables, None, level=False))
        Path({str(out / "f32.tflite")!r}).write_bytes(convert(variables, None, float16=False, level=False))
        Path({str(out / "shipped.tflite")!r}).write_bytes(convert(variables, None))
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"f16": out / "f16.tflite", "f32": out / "f32.tflite", "shipped": out / "shipped.tflite"}


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"teacher reference not found at {REFERENCE}")
def test_the_edge_front_end_through_the_exported_tagger_reproduces_the_reference(exported: dict[str, Path]) -> None:
    """From the clips' audio, through edge.features and a lite runtime: float32 weights reproduce musicnn's tags
    within 1e-3 (the front end's error), float16-stored weights (the bundle's) within 5e-3."""
    ref = np.load(REFERENCE)
    spec = musicnn_spec(("a", "b"))
    worst = {"f16": 0.0, "f32": 0.0}
    emb_rel = 0.0
    for name in ("f16", "f32"):
        model = TfliteModel(exported[name])
        assert model.input_shape == (1, 188, 96) and model.output_size == 50 + 1706
        for k, clip in enumerate(ref["clips"]):
            frames = mfcc(load_audio(GTZAN / str(clip), spec.sample_rate), spec)
            for p in range(1, ref[f"input_{k}"].shape[0]):  # patch p starts at our frame 188 p - 1
                out = model.run(frames[188 * p - 1 : 188 * p + 187])
                worst[name] = max(worst[name], float(np.abs(out[:50] - ref[f"tags_{k}"][p]).max()))
                want = np.concatenate([ref[f"{part}_{k}"][p] for part in ("mean_pool", "max_pool", "penultimate")])
                if name == "f16":
                    emb_rel = max(emb_rel, float(np.linalg.norm(out[50:] - want) / np.linalg.norm(want)))
    print(f"max |tag - reference|: float32 {worst['f32']:.1e}, float16 {worst['f16']:.1e}; "
          f"embedding relative error (float16) {emb_rel:.1e}; float16 model {exported['f16'].stat().st_size} bytes")
    assert worst["f32"] < 1e-3
    assert worst["f16"] < 5e-3 and emb_rel < 1e-2
    assert exported["f16"].stat().st_size < 2_000_000


@pytest.mark.slow
@pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")
def test_the_shipped_graph_hears_music_alike_at_any_level_the_gate_lets_through(exported: dict[str, Path]) -> None:
    """The same 3 s of music played 10 dB louder or up to 30 dB quieter than -20 dBFS: the published tagger's
    embedding moves by a fifth to two thirds of its length, the shipped graph's (level step first) by a few per
    cent (most at -50 dBFS, where a quiet piece's faint bands already fall into float16's subnormals in the front
    end, before the step can lift them), and at -20 dBFS the two graphs agree (the step leaves that level alone)."""
    spec = musicnn_spec(("a", "b"))
    published, shipped = TfliteModel(exported["f16"]), TfliteModel(exported["shipped"])
    moved: dict[str, list[float]] = {"published": [], "shipped": []}
    for clip in ("jazz/jazz.00011.ogg", "metal/metal.00002.ogg", "classical/classical.00011.ogg"):
        audio = load_audio(GTZAN / clip, spec.sample_rate)[5 * spec.sample_rate :][: spec.window_span_samples]
        audio = audio / np.sqrt(np.mean(np.square(audio)))  # 0 dBFS RMS; the gains below set the level

        def embedding(model: TfliteModel, dbfs: float, x: np.ndarray = audio) -> np.ndarray:
            frames = mfcc(x * 10 ** (dbfs / 20), spec)[: spec.frames_per_window]
            out: np.ndarray = model.run(frames)[50:]
            return out

        ref = embedding(published, -20)
        at_level = embedding(shipped, -20)
        assert np.linalg.norm(at_level - ref) < 0.03 * np.linalg.norm(ref), clip
        for dbfs in (-10, -30, -40, -50):
            for name, model in (("published", published), ("shipped", shipped)):
                moved[name].append(float(np.linalg.norm(embedding(model, dbfs) - ref) / np.linalg.norm(ref)))
    print({k: [round(v, 3) for v in vs] for k, vs in moved.items()})
    assert max(moved["shipped"]) < 0.1
    assert all(s < p / 3 for s, p in zip(moved["shipped"], moved["published"], strict=True))
    assert min(moved["published"]) > 0.1  # the level really moves the published tagger: the check can fail


@pytest.mark.slow
def test_the_shipped_graph_stays_finite_on_quiet_talk_under_noise(exported: dict[str, Path], tmp_path: Path) -> None:
    """A reject-class training clip (quiet espeak-ng talk) through two of the trainer's wide-noise copies: windows
    around -50 dBFS, just above the silence gate, where the level step boosts by ~30 dB. The first export with the
    step returned NaN for four of these nine windows (the float16-stored inverse DCT leaves silent bands a hair
    under 0, and log() of the boosted value went negative); every output must be finite."""
    import soundfile as sf

    from trainer.data.negatives import KINDS, negative_clip
    from trainer.data.variants import variant_audio

    spec = musicnn_spec(("a", "b"))
    path = tmp_path / "talk.wav"  # written as the trainer writes its reject-class clips, so the copies' seeds match
    sf.write(path, negative_clip(KINDS[18 % len(KINDS)], 22050, np.random.default_rng([0, 18, 0]), "train"), 22050,
             subtype="PCM_16")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    audio = load_audio(path, spec.sample_rate)
    model = TfliteModel(exported["shipped"])
    levels = []
    for variant in ("noise/1", "noise/5"):
        x = variant_audio(audio, spec.sample_rate, sha, variant, tmp_path, 0)
        frames = mfcc(x, spec)
        for s in window_starts(frames.shape[0], spec, spec.frames_per_window):
            window = x[s * spec.hop_length : s * spec.hop_length + spec.window_span_samples]
            levels.append(dbfs_from_mean_square(float(np.mean(np.square(window)))))
            assert np.isfinite(model.run(frames[s : s + spec.frames_per_window])).all(), (variant, s, levels[-1])
    print(f"{len(levels)} windows at {min(levels):.1f}..{max(levels):.1f} dBFS, all finite")
    assert min(levels) < -45  # the quiet regime where the boost is large: the check can fail


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")
def test_the_tagger_recipe_ships_a_bundle_the_edge_runs(tmp_path: Path) -> None:
    """``genre-train train --recipe tagger`` fetches the tagger, embeds every copy, fits the head on training
    clips only, scores the test clips in the training chain's rooms and the unseen family, checks the exported
    graph against its own computation and writes a bundle that genre-predict runs."""
    out = tmp_path / "bundle"
    proc = run_trainer(["train", "--quick", "--recipe", "tagger", "--data", str(GTZAN), "--out", str(out), "--workers",
                        "2"], cwd=tmp_path, timeout=880)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    shipped = report["shipped"]
    assert shipped["family"] == "tagger" and shipped["recipe"]["noise_copies"] > 0
    conditions = set(shipped["robustness_int8"])
    assert {"clean", "mild", "typical", "harsh", "unseen_room", "unseen_hiss"} <= conditions
    ablations = report["tagger_ablations"]  # every lever's head on the same split, the L2 strength among them
    strong = ablations["clean + both + FDN rooms, 10x stronger L2"]
    assert strong["head_c"] == pytest.approx(shipped["recipe"]["head_c"] / 10)
    assert {r["head_c"] for k, r in ablations.items() if "L2" not in k} == {shipped["recipe"]["head_c"]}
    gated = ablations["clean + both + FDN rooms, + a clean expert and a gate"]  # the shipped head beside its experts
    assert gated["clean_expert_c"] == shipped["recipe"]["clean_expert_c"] and set(gated["macro"]) == conditions
    adapted = [r for k, r in ablations.items() if ", re-standardised: " in k]  # the recipe's head (quick: 1+1+1 copies)
    assert len(adapted) == 4 and all(set(r["macro"]) == conditions for r in adapted)  # both histories, both blends
    level = report["level_check"]  # the bundle itself on its held-out music from -10 dBFS to the silence gate
    assert [r["level_dbfs"] for r in level["rows"]] == [-10, -20, -30, -40, -45, -50]
    assert level["bundle"] == shipped["version"] and "### Playback level" in (out / "report.md").read_text()
    assert report["playlist_setup"]["tuning"] == tuning_note()  # cross-fitted, not the CNN family's tuning rooms
    check = shipped["bundle_check"]
    print(f"bundle vs trainer: max |dp| {check['max_abs_prob_diff']:.4f} over {check['windows']} windows")
    assert check["max_abs_prob_diff"] < 0.02 and shipped["parity"]["top1_agreement"] >= 0.95
    assert check["sensor_heads_max_abs_prob_diff"] < 0.02  # the third output is the trainer's sensor heads
    split = json.loads((out / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"])
    notice = (out / "LICENSE-musicnn.md").read_text()
    assert "Music Technology Group" in notice and "Permission to use" in notice  # ISC, its copyright line
    from edge.bundle import load_bundle

    bundle = load_bundle(out)
    assert json.loads((out / "model.json").read_text())["model"]["architecture"] == "musicnn_msd+gated_linear"
    assert bundle.spec.front_end == "musicnn" and bundle.spec.hop_s == 1.5
    assert bundle.tags is not None and bundle.tags.heads_output == 2
    assert {p.tag for p in bundle.tags.sensors.values()} == {"head/instrumental", "head/danceable"}
    assert (out / "model.tflite").stat().st_size < 2_000_000
    predict = subprocess.run([sys.executable, "-m", "edge.predict", str(GTZAN / "jazz" / "jazz.00001.ogg"), "--model",
                              str(out), "--json", "--published"], cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=120)
    assert predict.returncode == 0, predict.stderr
    lines = [json.loads(line) for line in predict.stdout.splitlines() if line.strip()]
    assert len(lines) >= 15  # 30 s at the bundle's 1.5 s hop


@pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")
def test_genre_train_level_scores_a_bundle_on_its_held_out_music_at_every_level(tmp_path: Path) -> None:
    """``genre-train level`` on a copy of the shipped bundle: its held-out music, one clip a genre, at six levels
    through the device's own code, merged into the copy's report. The shipped graph levels every window, so the
    quietest row scores as the loud ones (the bundle before the level step fell from 92 % to 36 % of the clips)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "edge" / "models" / "default", bundle)
    proc = run_trainer(["level", "--max-per-genre", "1", "--data", str(GTZAN), "--out", str(bundle)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((bundle / "report.json").read_text())
    level = report["level_check"]
    rows = {r["level_dbfs"]: r for r in level["rows"]}
    assert level["clips"] == 10 and set(rows) == {-10, -20, -30, -40, -45, -50}
    assert "shipped" in report  # merged: the ship's sections stay
    print({d: round(r["clip_accuracy"], 2) for d, r in rows.items()})
    assert rows[-50]["clip_accuracy"] >= rows[-20]["clip_accuracy"] - 0.1 >= 0.5
    assert rows[-50]["windows_as_not_music"] <= 0.1
    assert "| clip accuracy % |" in (bundle / "report.md").read_text()
    # No held-out list beside the model: one clear error, nothing written.
    (bundle / "split.json").unlink()
    (bundle / "report.json").unlink()
    proc = run_trainer(["level", "--data", str(GTZAN), "--out", str(bundle)], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "split.json" in proc.stderr
    assert not (bundle / "report.json").exists()
