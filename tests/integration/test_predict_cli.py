"""`genre-predict` as a user runs it: a real subprocess, real clips, real models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from edge.spec import FeatureSpec

PREDICT = [sys.executable, "-m", "edge.predict"]


def _run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PREDICT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _clip(gtzan_dir: Path, genre: str = "jazz", number: int = 1) -> Path:
    return gtzan_dir / genre / f"{genre}.{number:05d}.ogg"


def test_timeline_and_verdict_for_a_gtzan_clip_with_the_shipped_model(gtzan_dir: Path, shipped_bundle: Path) -> None:
    proc = _run(_clip(gtzan_dir))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("jazz.00001.ogg")
    rows = [line for line in lines if "–" in line]
    hop_s = json.loads((shipped_bundle / "model.json").read_text())["feature_spec"]["hop_s"]
    expected = int((30 - 3.1) / hop_s)  # a window per hop of the bundle once the first 3 s window is full
    assert len(rows) >= expected, f"expected a window every {hop_s} s of a 30 s clip, got {len(rows)}"
    assert any(line.strip().startswith("verdict:") for line in lines)
    assert proc.stderr == "", f"nothing on stderr for a good run, got {proc.stderr!r}"


def test_json_lines_schema_and_window_count(gtzan_dir: Path, tiny_bundle: Path) -> None:
    clip = _clip(gtzan_dir, "rock", 3)
    proc = _run(clip, "--model", tiny_bundle, "--json", "--hop", "0.5")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    windows, final = rows[:-1], rows[-1]
    spec = FeatureSpec(labels=tuple(final["probabilities"]))
    n_samples = sf.info(str(clip)).frames
    n_frames = 1 + (n_samples - spec.win_length) // spec.hop_length
    hop = round(0.5 * spec.sample_rate / spec.hop_length)
    assert len(windows) == 1 + (n_frames - spec.frames_per_window) // hop
    for row in windows:
        assert set(row) == {"file", "start", "end", "genre", "confidence", "probabilities"}
        assert row["genre"] == max(row["probabilities"], key=row["probabilities"].get)
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-3
        assert 2.99 < row["end"] - row["start"] < 3.0
    assert set(final) == {"file", "verdict", "confidence", "probabilities"}
    assert final["verdict"] == max(final["probabilities"], key=final["probabilities"].get)


def test_a_bad_file_among_good_ones_is_reported_and_the_rest_still_classified(
    gtzan_dir: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 50)
    proc = _run(corrupt, _clip(gtzan_dir), "--model", tiny_bundle, "--json")
    assert proc.returncode == 65
    assert proc.stderr.count("\n") == 1 and "corrupt.wav: cannot decode audio" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["file"].endswith("jazz.00001.ogg")


def _short_wav(tmp_path: Path) -> Path:
    path = tmp_path / "short.wav"
    sf.write(path, np.zeros(22050, dtype=np.float32), 22050)
    return path


def test_each_bad_input_gives_one_line_and_its_exit_code(tiny_bundle: Path, tmp_path: Path, gtzan_dir: Path) -> None:
    empty_dir = tmp_path / "not-a-bundle"
    empty_dir.mkdir()
    cases = [
        ((tmp_path / "missing.ogg", "--model", tiny_bundle), 2, "no such file"),
        ((_short_wav(tmp_path), "--model", tiny_bundle), 65, "shorter than one"),
        ((_clip(gtzan_dir), "--model", tmp_path / "nowhere"), 2, "model directory does not exist"),
        ((_clip(gtzan_dir), "--model", empty_dir), 65, "model.json: missing"),
        ((_clip(gtzan_dir), "--model", tiny_bundle, "--hop", "9"), 2, "--hop must be in"),
        (("--json",), 2, "required"),
    ]
    for args, code, needle in cases:
        proc = _run(*args)
        assert proc.returncode == code, f"{args}: exit {proc.returncode}, stderr {proc.stderr!r}"
        assert needle in proc.stderr, f"{args}: {proc.stderr!r}"
        assert "Traceback" not in proc.stderr
        if code == 65:
            assert proc.stderr.count("\n") == 1, f"{args}: more than one line: {proc.stderr!r}"


def test_published_view_is_what_the_daemon_decides_hop_by_hop(gtzan_dir: Path, shipped_bundle: Path) -> None:
    from edge.audio import load_audio
    from edge.bundle import load_bundle
    from edge.decide.batch import decide_windows, window_inputs

    clip = _clip(gtzan_dir, "blues", 2)
    proc = _run(clip, "--published", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    hops, summary = rows[:-1], rows[-1]
    hop_s = load_bundle(shipped_bundle).spec.hop_s
    assert summary["hops"] == len(hops) >= int((30 - 3.1) / hop_s)
    assert summary["changes"] == sum(h["changed"] for h in hops[1:])
    assert all(0.0 <= h["confidence"] <= 1.0 for h in hops)
    assert {h["published"] for h in hops} <= {*load_bundle(shipped_bundle).spec.labels, "uncertain", "not_music",
                                               "silence"} - {"unknown"}
    # Streaming (the daemon's Classifier, on the hop grid) == the batch path the trainer's playlist evaluation uses.
    bundle = load_bundle(shipped_bundle)
    inputs, rms, end_s = window_inputs(load_audio(clip, bundle.spec.sample_rate), bundle.spec, bundle.spec.hop_frames)
    probs = np.stack([bundle.model.predict(x).copy() for x in inputs])
    offline = decide_windows(probs, rms, bundle.spec.labels, bundle.decision)
    assert [d.state for d in offline] == [h["published"] for h in hops]
    # The same windows: the same states and, to the JSON's rounding, the same confidences.
    assert np.allclose([d.confidence for d in offline], [h["confidence"] for h in hops], atol=1e-4)
    assert np.allclose(end_s, [h["time"] for h in hops], atol=0.1)

    table = _run(clip, "--published")
    assert table.returncode == 0 and f"{len(hops)} hops, {summary['changes']} changes" in table.stdout
