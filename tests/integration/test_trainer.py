"""genre-train end to end on real GTZAN audio: the trainer runs in subprocesses (TensorFlow never enters
this process, which loads the bundle with edge's light runtime)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.support.trainer_cli import run_trainer as _run
from trainer.augment.unseen import UNSEEN_CONDITIONS

REPO = Path(__file__).resolve().parents[2]
GTZAN = REPO.parent / "shared" / "gtzan"
LITE_BUNDLE = REPO / "edge" / "models" / "lite"  # the int8 MFCC model: what the int8 parity check guards

pytestmark = pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("trainer")
    cache, out = root / "cache", root / "bundle"
    proc = _run(["train", "--quick", "--no-degrade", "--recipe", "default", "--data", str(GTZAN), "--out", str(out),
                 "--cache-dir", str(cache), "--workers", "2", "--threads", "1"], cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, cache, proc


@pytest.mark.slow
def test_quick_training_gives_a_loadable_int8_bundle(quick_run: tuple[Path, Path, object]) -> None:
    out, _, _ = quick_run
    from edge.audio import load_audio
    from edge.bundle import load_bundle
    from edge.features import mfcc, normalize_window

    bundle = load_bundle(out)
    assert bundle.model.quantized
    assert bundle.spec.mean is not None and bundle.spec.cmn
    audio = load_audio(GTZAN / "blues" / "blues.00000.ogg", bundle.spec.sample_rate)
    frames = mfcc(audio[: bundle.spec.sample_rate * 4], bundle.spec)[: bundle.spec.frames_per_window]
    probs = bundle.model.predict(normalize_window(frames, bundle.spec))
    assert probs.shape == (len(bundle.spec.labels),)
    assert np.isclose(probs.sum(), 1.0, atol=1e-3)

    report = json.loads((out / "report.json").read_text())
    shipped = report["shipped"]
    for key in ("clip_accuracy_float", "clip_accuracy_int8", "int8_float_top1_agreement"):
        assert 0.0 <= shipped[key] <= 1.0
    # The reject class: learned from synthetic non-music, measured on unseen voices as the daemon decides.
    assert "not_music" in bundle.spec.labels
    assert report["data"]["counts"]["not_music"] == 3
    assert 0.0 <= shipped["false_genre"]["clean"]["false_genre_rate"] <= 1.0
    assert shipped["false_genre"]["clean"]["windows"] > 0
    assert shipped["tflite_bytes"] == (out / "model.tflite").stat().st_size
    split = json.loads((out / "split.json").read_text())
    assert split["by"] == "artist" and split["protocol"] == "artist"  # the shared subset carries artist metadata
    assert not set(split["train"]) & set(split["test"])  # no clip on both sides
    side = {c: "test" if c in split["test"] else "train" for c in split["train"] + split["test"]}
    groups: dict[str, set[str]] = {}
    for clip in split["clips"]:
        groups.setdefault(clip["group"], set()).add(side[clip["clip_id"]])
    assert all(len(sides) == 1 for sides in groups.values()), groups  # no artist on both sides
    assert shipped["protocol"] == "artist"
    for name in ("report.md", "confusion.png", "curves.png", "playlist_clean.png"):
        assert (out / name).stat().st_size > 0
    # Issue 11: the shipped model's playlists (clean only under --no-degrade) and its tuned rule in model.json.
    from edge.decide.params import DecisionParams

    assert list(report["playlist"]) == ["clean"] and list(report["playlist_baseline"]) == ["clean"]
    assert set(report["playlist"]["clean"]["switch_latency_s"]) == {"median", "p90"}
    assert 0.0 <= report["playlist"]["clean"]["time_accuracy"] <= 1.0
    assert bundle.decision == DecisionParams.from_dict(report["playlist_shipped"]["decision"])
    assert bundle.decision.rule == "hmm"


@pytest.mark.slow
def test_second_run_reads_the_feature_cache(quick_run: tuple[Path, Path, object], tmp_path: Path) -> None:
    out, cache, _ = quick_run
    first = json.loads((out / "report.json").read_text())["data"]
    assert first["features_computed"] > 0
    proc = _run(["train", "--quick", "--no-degrade", "--recipe", "default", "--data", str(GTZAN), "--out",
                 str(tmp_path / "again"), "--cache-dir", str(cache), "--threads", "1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["data"]["features_computed"] == 0
    assert again["data"]["features_cached"] == first["features_computed"] + first["features_cached"]
    # --seed fixes everything: the same model bytes and numbers from the same inputs.
    assert (tmp_path / "again" / "model.tflite").read_bytes() == (out / "model.tflite").read_bytes()


@pytest.mark.slow
def test_parity_check_catches_a_wrong_input_scale(tmp_path: Path) -> None:
    assert (LITE_BUNDLE / "model.tflite").is_file(), f"the lite bundle is missing at {LITE_BUNDLE}"
    script = textwrap.dedent(f"""
        import shutil, sys
        from pathlib import Path
        import numpy as np
        from edge.audio import load_audio
        from edge.bundle import read_bundle_json
        from edge.features import mfcc, normalize_window
        from trainer.export.tflite import ParityError, check_parity
        from tensorflow.lite.tools import flatbuffer_utils as fu

        good = Path({str(LITE_BUNDLE / "model.tflite")!r})
        spec, _ = read_bundle_json(good.parent)
        frames = np.concatenate([mfcc(load_audio(Path({str(GTZAN)!r}) / p, spec.sample_rate), spec)
                                 for p in ("blues/blues.00001.ogg", "metal/metal.00002.ogg", "pop/pop.00003.ogg")])
        n = spec.frames_per_window
        x = normalize_window(np.stack([frames[i:i + n] for i in range(0, frames.shape[0] - n, 43)]), spec)
        check_parity(good.read_bytes(), good.read_bytes(), x)  # identical models pass
        model = fu.read_model(str(good))
        sub = model.subgraphs[0]
        wrong = list(sub.tensors[sub.inputs[0]].quantization.scale)
        # A deliberately wrong input scale (calibrated on 1/20 of the real range), applied to every tensor that
        # shares it, since reshape-like ops insist their input and output scales match.
        for tensor in sub.tensors:
            q = tensor.quantization
            if q is not None and q.scale is not None and list(q.scale) == wrong:
                q.scale = [s / 20 for s in q.scale]
        bad = Path({str(tmp_path / "bad.tflite")!r})
        fu.write_model(model, str(bad))
        try:
            check_parity(good.read_bytes(), bad.read_bytes(), x)
        except ParityError as exc:
            print("CAUGHT", exc)
            sys.exit(0)
        print("NOT CAUGHT")
        sys.exit(1)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "CAUGHT int8 model disagrees with float" in proc.stdout


def _gtzan_download(root: Path, genres: dict[str, list[int]], seconds: float) -> Path:
    """A user's Kaggle-style GTZAN folder: ``genres_original/<genre>/<genre>.NNNNN.wav`` (WAV, no metadata),
    made from the shared clips (cut to ``seconds`` to keep the room chain quick), plus GTZAN's broken jazz.00054."""
    import soundfile as sf

    from edge.audio import load_audio

    base = root / "Data" / "genres_original"
    for genre, ids in genres.items():
        (base / genre).mkdir(parents=True)
        for i in ids:
            audio = load_audio(GTZAN / genre / f"{genre}.{i:05d}.ogg", 22050)[: int(seconds * 22050)]
            sf.write(base / genre / f"{genre}.{i:05d}.wav", audio, 22050, subtype="PCM_16")
    # The Kaggle copy of jazz.00054 is a WAV header soundfile cannot decode; ours is a header and junk.
    (base / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))
    return root / "Data"


@pytest.mark.slow
def test_a_gtzan_download_with_its_broken_file_trains_with_the_room_chain(tmp_path: Path) -> None:
    """Issue 12: a real GTZAN folder crashed (KeyError ('jazz.00003', 'aug/0')) once a file failed to decode,
    because the clips were split twice. With the room chain on, the run now trains, reports the skip, ships.
    It runs the recipe a user gets from a bare ``genre-train train``: the tagger."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng (apt) is needed by the room chain's babble and the reject class")
    data = _gtzan_download(tmp_path, {"blues": [0, 40, 80], "classical": [0, 50, 99], "jazz": [1, 3, 30],
                                      "pop": [0, 45, 90]}, seconds=8.0)
    out = tmp_path / "bundle"
    proc = _run(["train", "--quick", "--data", str(data), "--out", str(out), "--workers", "2"], cwd=tmp_path,
                timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "jazz.00054" in proc.stderr and "no artist metadata" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert [s["clip_id"] for s in report["data"]["skipped"]] == ["jazz.00054"]
    assert report["data"]["skipped_count"] == 1 and "jazz.00054" in (out / "report.md").read_text()
    assert report["shipped"]["protocol"] == "clip"
    assert (out / "model.tflite").stat().st_size == report["shipped"]["tflite_bytes"] > 0
    # One plan: made over the decodable clips, and every training clip got its room copy, every test clip its rooms.
    plan = json.loads((out / "split.json").read_text())
    assert plan["protocol"] == "clip" and plan["by"] == "clip"
    clips = {c["clip_id"]: c for c in plan["clips"]}
    assert "jazz.00054" not in clips and [s["clip_id"] for s in plan["skipped"]] == ["jazz.00054"]
    assert set(plan["train"]) | set(plan["test"]) == set(clips) and not set(plan["train"]) & set(plan["test"])
    unseen = [f"eval/{c}" for c in UNSEEN_CONDITIONS]
    for cid in plan["train"]:
        assert clips[cid]["variants"] == ["clean", "aug/0", "noise/0", "reverb/0"], clips[cid]
    for cid in plan["test"]:
        assert clips[cid]["variants"] == ["clean", "eval/mild", "eval/typical", "eval/harsh", *unseen], clips[cid]
    assert {clips[c]["genre"] for c in plan["test"]} >= {"blues", "classical", "jazz", "pop"}
    assert set(report["shipped"]["robustness_int8"]) == {"clean", "mild", "typical", "harsh", *UNSEEN_CONDITIONS}
    assert report["shipped"]["family"] == "tagger"


@pytest.mark.slow
def test_ablate_trains_folds_in_worker_processes_and_adds_a_report_row(tmp_path: Path) -> None:
    """The comparison machinery end to end (spawned fold workers, room variants), on 12 clips and 2 epochs."""
    out = tmp_path / "o"
    common = ["--quick", "--data", str(GTZAN), "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--workers", "2"]
    proc = _run(["ablate", *common, "--set", "cvn=true", "--set", "aug_copies=1", "--name", "cvn"], cwd=tmp_path,
                timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads((out / "report.json").read_text())["ablations"]["cvn"]
    assert row["set"] == {"cvn": True, "aug_copies": 1} and row["severity"] == "typical" and row["folds"] == 2
    for key in ("clean", "typical"):
        assert row[key]["n"] == 2 and all(0.0 <= v <= 1.0 for v in row[key]["values"]), row
    loss = [c - t for c, t in zip(row["clean"]["values"], row["typical"]["values"], strict=True)]
    assert row["loss"]["values"] == pytest.approx(loss)
    assert "| cvn | cvn=True, aug_copies=1 | 2 |" in (out / "report.md").read_text()
    bad = _run(["ablate", *common, "--set", "cvn=maybe"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("genre-train: error: --set cvn=maybe")
    assert json.loads((out / "report.json").read_text())["ablations"].keys() == {"cvn"}  # nothing lost


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a hang guard, not a speed bound (300-500 s under load before the distilled, tagger rows)
def test_compare_scores_both_recipes_clean_and_in_every_room_by_artist(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    shipped_data = {"root": "train's", "clips": 1, "counts": {"blues": 1}, "core_counts": {}, "skipped": []}
    (out / "report.json").write_text(json.dumps({"data": shipped_data}))
    proc = _run(["compare", "--quick", "--data", str(GTZAN), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                 "--workers", "2", "--no-core", "--no-unseen", "--tagger-c", "0.001"], cwd=tmp_path, timeout=1400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["data"] == shipped_data  # the shipped model's section is not clobbered
    assert report["data_compare"]["clips"] == 12
    assert report["protocol"] == "artist" and report["cv"]["protocol"] == "artist"
    assert set(report["recipes"]) == {"velardo_segment_split", "velardo_clip_split", "default_clip_split",
                                      "distilled_clip_split", "tagger_linear_clip_split", "tagger_room_clip_split",
                                      "tagger_clip_split", "tagger_C0.001_clip_split"}  # the L2 sweep's row too
    assert report["recipe_definitions"]["tagger_C0.001"]["head_c"] == 0.001
    assert report["recipe_definitions"]["tagger_C0.001"]["aug_copies"] == report["recipe_definitions"]["tagger"][
        "aug_copies"]
    assert set(report["recipes_by_clip"]) == {"default_clip_split"}  # the clip column: default recipe only
    assert report["recipes_by_clip"]["default_clip_split"]["folds"] == 2
    per_genre = report["recipes"]["default_clip_split"]["per_genre_clip"]
    assert sum(m["support"] for m in per_genre.values()) == 12
    assert report["recipes"]["default_clip_split"]["thin_genres"] == sorted(per_genre)  # 3 test clips each
    assert sum(map(sum, report["cv"]["genre_per_fold"].values())) == 12
    assert report["recipes"]["velardo_segment_split"]["leaky"] and not report["recipes"]["default_clip_split"]["leaky"]
    for kind in ("velardo_clip_split", "default_clip_split", "distilled_clip_split", "tagger_linear_clip_split",
                 "tagger_room_clip_split", "tagger_clip_split", "tagger_C0.001_clip_split"):
        rob = report["robustness"][kind]
        assert list(rob) == ["clean", "mild", "typical", "harsh"]
        assert all(rob[c]["clip_macro_accuracy"]["n"] == 2 for c in rob), rob
    folds = report["cv"]["fold_of_clip"]
    assert len(folds) == 12 and sorted(set(folds.values())) == [0, 1]  # each clip in exactly one test fold
    plan = json.loads((out / "split_compare.json").read_text())
    fold_of_group: dict[str, set[int]] = {}
    for clip in plan["clips"]:
        fold_of_group.setdefault(clip["group"], set()).add(plan["splits"]["artist"]["part"][clip["clip_id"]])
    assert all(len(f) == 1 for f in fold_of_group.values())  # an artist in one fold only
    md = (out / "report.md").read_text()
    assert "LEAKY" not in md.split("## Recipe comparison")[0] and "**leaky**" in md and "robustness.png" in md
    assert "CV by artist" in md and "folds by clip |" in md and "⚠" in md and "tagger (ships)" in md
    assert "| tagger_C0.001 | by artist |" in md
    assert (out / "robustness.png").stat().st_size > 0
    # Issue 11: playlists of each artist fold's test clips, tuned rule beside today's, every condition.
    for section in ("playlist_cv", "playlist_cv_baseline"):
        assert list(report[section]) == ["clean", "mild", "typical", "harsh"]
        assert report[section]["typical"]["switch_latency_s"]["median"]["n"] == 2
        assert report[section]["typical"]["settled_accuracy"]["mean"] is not None
    assert [f["fold"] for f in report["playlist_cv_folds"]] == [0, 1]
    assert all(f["tuned"]["rule"] == "hmm" and f["counts"]["songs"] >= 4 for f in report["playlist_cv_folds"])
    assert "What the house hears" in md and (out / "playlist_cv_typical.png").stat().st_size > 0


@pytest.mark.slow
def test_compare_hands_each_trained_fold_to_a_hook(tmp_path: Path) -> None:
    """The seam for per-fold evaluations (issue 11's playlists): the hook sees the fold's clips, model and spec."""
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from trainer.runs.setup import groups_of
        from trainer.runs.compare import compare
        from trainer.runs.fit import base_spec, decodable, find_clips, load_data
        from trainer.data.plan import ARTIST, cv_plan
        from trainer.model.recipes import get_recipe

        def hook(ctx):
            probs = ctx.trained.model.predict(__import__("trainer.model.train", fromlist=["prepare"]).prepare(
                ctx.data.store.get(ctx.data.clips[ctx.test_idx[0]].clip_id)[None, :126], ctx.trained.spec,
                ctx.trained.recipe), verbose=0)
            return {{"split": ctx.split, "kind": ctx.kind, "fold": ctx.fold, "train": ctx.train_idx.tolist(),
                    "test": ctx.test_idx.tolist(), "normalised": ctx.trained.spec.mean is not None,
                    "labels": list(ctx.trained.spec.labels), "probs": probs.shape[1]}}

        if __name__ == "__main__":
            root, cache = Path({str(GTZAN)!r}), Path({str(tmp_path / "c")!r})
            recipes = {{n: get_recipe(n, epochs=1) for n in ("velardo", "default")}}
            clips, skipped = find_clips(root, True)
            spec = base_spec(tuple(sorted({{c.genre for c in clips}})), recipes["default"])
            clips, skipped, probed = decodable(clips, skipped, spec, cache, 1)
            groups, protocol = groups_of(root, clips)
            plan = cv_plan([c.clip_id for c in clips], [c.genre for c in clips], groups, protocol, n_folds=2,
                           seed=0, train_copies=[], test_copies=[], by_clip=False)
            data = load_data(clips, skipped, spec, plan.variants, cache, 1, probed=probed)
            out = compare(data, recipes, plan=plan, runs={{ARTIST: ("default_clip_split",)}}, seed=0, threads=1,
                          severities=(), jobs=1, on_fold=hook)
            print("RESULT", json.dumps({{"extras": out["extras"], "part": plan.split(ARTIST).part,
                                         "ids": data.clip_ids}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT ", 1)[1])
    folds = got["extras"]["artist"]["default_clip_split"]
    assert [f["fold"] for f in folds] == [0, 1]
    ids, part = got["ids"], got["part"]
    for f in folds:
        assert f["split"] == "artist" and f["kind"] == "default_clip_split" and f["normalised"]
        assert sorted(f["train"] + f["test"]) == list(range(len(ids)))  # every clip on exactly one side
        assert {part[ids[i]] for i in f["test"]} == {f["fold"]} and f["fold"] not in {part[ids[i]] for i in f["train"]}
        assert f["probs"] == len(f["labels"]) == 4


@pytest.mark.slow
def test_the_distilled_recipe_fetches_the_teacher_and_reports_its_head(tmp_path: Path) -> None:
    """``--recipe distilled`` embeds every clip with the teacher, cross-fits its head on the training clips,
    trains the student on the mixed targets and reports the teacher's own row beside the student's."""
    out = tmp_path / "bundle"
    proc = _run(["train", "--quick", "--no-degrade", "--recipe", "distilled", "--data", str(GTZAN), "--out", str(out),
                 "--workers", "2", "--threads", "1"], cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shipped = json.loads((out / "report.json").read_text())["shipped"]
    assert shipped["recipe"]["name"] == "distilled" and shipped["recipe"]["teacher_weight"] > 0
    teacher = shipped["teacher"]
    assert teacher["embeddings_computed"] + teacher["embeddings_cached"] == shipped["train_clips"] + shipped[
        "test_clips"]
    assert 0.0 <= teacher["head_float"]["clip_accuracy"] <= 1.0 and "ISC" in teacher["licence"]
    assert "The teacher" in (out / "report.md").read_text()
    from edge.bundle import load_bundle

    assert load_bundle(out).model.quantized
