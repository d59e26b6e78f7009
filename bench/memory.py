"""Section 5: resident memory, each stage in a fresh interpreter (RSS only grows, so stages measured in one
process would hide each other).

Two views: RSS per import, as a chain where each stage adds one import to the previous stage (so the
difference between neighbours is what that import costs), and the daemon's real import set with each bundle
loaded and one window classified.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO, Row, SectionResult, Table, Target, section_main
from bench.model import lite_from_args, model_from_dir

HEAVY = (
    *("tensorflow", "keras", "librosa", "numba", "matplotlib", "sklearn"),
    *("pyaudio", "scipy", "python_speech_features"),
)

# stage -> (label, imports added on top of the previous stage of the chain). Executed in order by the worker.
CHAIN = {
    "python": ("python + psutil (baseline)", ""),
    "numpy": ("+ numpy", "import numpy"),
    "audio": ("+ soundfile, soxr (file decoding, resampling)", "import soundfile, soxr"),
    "runtime": ("+ the lite runtime's Interpreter (the one the daemon picks)", "RUNTIME"),
    "paho": ("+ paho.mqtt.client", "import paho.mqtt.client"),
    "pyaudio": ("+ pyaudio (the mic path: PortAudio, ALSA)", "import pyaudio"),
}
# Stages outside the chain: (label, code). BUNDLE/LITE are the bundle paths.
ALONE = {
    "tflite_runtime": ("chain up to soxr + tflite_runtime instead (a Pi on Bookworm)", "CHAIN:audio;TFLITE"),
    # What the daemon imported until its front ends became numpy alone: the saving, for scale.
    "scipy_psf": ("numpy + scipy.fft + python_speech_features (no longer imported by the daemon)",
                  "import numpy, scipy.fft, scipy.fftpack, python_speech_features"),
    "cli": ("import daemon.cli only (what genre-daemon imports before it needs more)", "import daemon.cli"),
    "daemon": ("the daemon's import set (cli, pipeline, sources, mqtt, classifier, runtime)", "DAEMON;RUNTIME"),
    "lite": ("daemon import set + lite bundle loaded + one window classified", "DAEMON;RUNTIME;LOAD:LITE"),
    "shipped": ("daemon import set + shipped bundle loaded + one window classified", "DAEMON;RUNTIME;LOAD:BUNDLE"),
    # A Pi on Bookworm runs tflite_runtime, whose kernels hold the tagger's buffers differently.
    "lite_tfl": ("the same, lite bundle with tflite_runtime", "DAEMON;TFLITE;LOAD:LITE@tflite_runtime"),
    "shipped_tfl": ("the same, shipped bundle with tflite_runtime", "DAEMON;TFLITE;LOAD:BUNDLE@tflite_runtime"),
    "tensorflow": ("import tensorflow (for scale; never on the Pi)", "TF"),
}

# Run with ``python -c`` so nothing of the bench (numpy, edge) is imported before the stage itself.
WORKER = """
import json, os, sys
steps, bundle, lite = sys.argv[1].split(";"), sys.argv[2], sys.argv[3]
import psutil
for step in steps:
    if step == "RUNTIME":
        from edge.runtime_choice import lite_runtime, load_interpreter_class
        load_interpreter_class(lite_runtime())
    elif step == "TFLITE":
        import tflite_runtime.interpreter
    elif step == "DAEMON":
        import daemon.cli, daemon.pipeline, daemon.sources, daemon.mqtt, edge.decide.classifier, edge.features
    elif step.startswith("LOAD:"):
        import numpy as np
        from edge.bundle import load_bundle
        from edge.decide.classifier import Classifier
        from edge.runtime_choice import lite_runtime
        which, _, rt = step.removeprefix("LOAD:").partition("@")
        b = load_bundle(bundle if which == "BUNDLE" else lite, runtime=rt or lite_runtime())
        c = Classifier(b.spec, b.model, b.decision, hop_s=b.spec.hop_s, tags=b.tags)
        rng = np.random.default_rng(0)
        c.push((0.1 * rng.standard_normal(5 * b.spec.sample_rate)).astype("float32"))
    elif step == "TF":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow
    elif step:
        exec(step)
heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY})
print(json.dumps({"rss_mb": psutil.Process().memory_info().rss / 2**20, "heavy": heavy, "modules": len(sys.modules)}))
"""


def chain_steps(upto: str) -> list[str]:
    keys = list(CHAIN)
    return [CHAIN[k][1] for k in keys[: keys.index(upto) + 1]]


def steps_for(stage: str) -> list[str]:
    if stage in CHAIN:
        return chain_steps(stage)
    out: list[str] = []
    for part in ALONE[stage][1].split(";"):
        out += chain_steps(part.removeprefix("CHAIN:")) if part.startswith("CHAIN:") else [part]
    return out


def run_worker(steps: list[str], bundle: Path, lite: Path | None) -> dict[str, Any]:
    code = f"HEAVY = {HEAVY!r}\n{WORKER}"
    cmd = [sys.executable, "-c", code, ";".join(steps), str(bundle), str(lite or "")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def measure(stage: str, label: str, choice: Path, lite: Path | None, repeats: int) -> Row:
    row = Row(label, "MB")
    for _ in range(repeats):
        out = run_worker(steps_for(stage), choice, lite)
        if "error" in out:
            row.note = f"failed: {out['error']}"
            break
        row.samples.append(out["rss_mb"])
        row.extra = {"heavy_modules": out["heavy"], "modules": out["modules"]}
    return row


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    lite = lite_from_args(args.lite_dir)
    res = SectionResult("memory", "5. Memory")
    res.notes.append(f"model: {choice.describe()}")
    res.notes.append(f"beside it: {lite.describe() if lite else 'no lite bundle installed'}")
    repeats = 1 if args.quick else 3
    chain_rows, prev = [], None
    for stage, (label, _) in CHAIN.items():
        row = measure(stage, label, choice.bundle, None, repeats)
        if row.samples and prev is not None and prev.samples:
            row.note = row.note or f"+{row.median - prev.median:.1f} MB; {row.extra['modules']} modules"
        chain_rows.append(row)
        prev = row
    res.tables.append(
        Table(
            "RSS per import (a chain: each stage adds one import to the one above)",
            chain_rows,
            note="MB resident; ratio to baseline",
        )
    )
    rows = []
    by_stage: dict[str, Row] = {}
    for stage, (label, _) in ALONE.items():
        if (stage == "tensorflow" and args.quick) or (stage.startswith("lite") and lite is None):
            continue
        row = measure(stage, label, choice.bundle, lite.bundle if lite else None, repeats)
        heavy = list(row.extra.get("heavy_modules", []))
        if row.samples:
            row.note = row.note or (f"{row.extra['modules']} modules; heavy: {', '.join(heavy) or 'none'}")
        by_stage[stage] = row
        rows.append(row)
    res.tables.append(Table("The daemon's RSS (fresh interpreter per row)", rows, note="MB resident; ratio to 1st"))
    daemon_heavy = list(by_stage["daemon"].extra.get("heavy_modules", [])) if "daemon" in by_stage else []
    tf_loaded = "tensorflow" in daemon_heavy
    res.targets.append(
        Target(
            '"tensorflow" in sys.modules after the daemon\'s import set',
            1.0 if tf_loaded else 0.0,
            "<=",
            0.0,
            "bool",
            note=f"heavy modules imported: {', '.join(daemon_heavy) or 'none'}",
        )
    )
    med = {k: r.median for k, r in by_stage.items() if r.samples}
    res.facts = {"chain": {r.name: r.median for r in chain_rows}, "daemon": med, "daemon_heavy_modules": daemon_heavy}
    if "daemon" in med and "shipped" in med:
        line = (
            f"Memory: the daemon's import set {med['daemon']:.0f} MB RSS (heavy modules: "
            f"{', '.join(daemon_heavy) or 'none'}); with the shipped bundle loaded and a window classified "
            f"{med['shipped']:.0f} MB"
        )
        if "lite" in med:
            line += f", with the lite bundle {med['lite']:.0f} MB"
        if "shipped_tfl" in med:
            line += f"; the shipped bundle with tflite_runtime (a Pi on Bookworm) {med['shipped_tfl']:.0f} MB"
        per = [
            f"{r.name.removeprefix('+ ').split(' (')[0]} {r.median - p.median:+.0f}"
            for p, r in itertools.pairwise(chain_rows)
            if r.samples and p.samples
        ]
        res.headline.append(line + f"; per import (MB): {'; '.join(per)}.")
    return res


if __name__ == "__main__":
    section_main("memory", run)
