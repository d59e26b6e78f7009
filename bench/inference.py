"""Section 2: inference per window, each runtime x float/int8 x num_threads 1/2, each in its own process.

tensorflow imported before tflite_runtime breaks the latter, so every combination runs in a fresh
interpreter (``python -m bench.inference --worker ...``). Workers run in two passes, the second in reverse
order, and their samples are merged: slow drift of a shared machine then hits every row alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, Row, SectionResult, Table, music_like, section_main, time_calls, version_of
from bench.model import ModelChoice, bench_cache_dir, model_from_dir, tiny_model

RUNTIME_DISTS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow-cpu"}
LABELS = {"ai_edge_litert": "ai_edge_litert", "tflite_runtime": "tflite_runtime", "tensorflow": "tf.lite"}


def worker(model_path: Path, bundle: Path, runtime: str, threads: int, repeats: int) -> dict[str, Any]:
    """Load one model with one runtime and time ``predict`` on a real normalised window."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edge.bundle import read_bundle_json
    from edge.features import mfcc, normalize_window
    from edge.runtime import TfliteModel

    note = "via tf.lite.Interpreter" if runtime == "tensorflow" else ""
    spec, _ = read_bundle_json(bundle)
    frames = mfcc(music_like(4.0, spec.sample_rate), spec)[: spec.frames_per_window]
    window = normalize_window(frames, spec)
    t0 = time.perf_counter()
    model = TfliteModel(model_path, num_threads=threads, runtime=runtime)
    load_ms = (time.perf_counter() - t0) * 1e3
    samples = [s * 1e3 for s in time_calls(lambda: model.predict(window), repeats, warmup=20)]
    return {"samples": samples, "load_ms": load_ms, "dtype": str(model.input_dtype), "note": note}


def run_worker(model: Path, bundle: Path, runtime: str, threads: int, repeats: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.inference",
        "--worker",
        runtime,
        str(model),
        str(bundle),
        str(threads),
        str(repeats),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if proc.returncode != 0:
        last = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": last[-1][:200] if last else f"exit {proc.returncode}"}
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def measure(choice: ModelChoice, threads: tuple[int, ...], repeats: int, passes: int) -> list[Row]:
    """One row per runtime x model dtype x threads; unavailable combinations last, with the reason."""
    models = [("int8", choice.int8_model)] + ([("float", choice.float_model)] if choice.float_model else [])
    combos = [(rt, kind, path, th) for rt in RUNTIME_DISTS for kind, path in models for th in threads]
    results: dict[tuple[str, str, int], dict[str, Any]] = {}
    for p in range(passes):
        order = combos if p % 2 == 0 else list(reversed(combos))
        for rt, kind, path, th in order:
            key = (rt, kind, th)
            if "error" in results.get(key, {}):
                continue
            out = run_worker(path, choice.bundle, rt, th, repeats // passes)
            if "error" in out:
                results[key] = out
                continue
            prev = results.setdefault(key, {"samples": [], "load_ms": [], "note": out.get("note", "")})
            prev["samples"].extend(out["samples"])
            prev["load_ms"].append(out["load_ms"])
    rows = []
    for rt, kind, _, th in combos:
        r = results[(rt, kind, th)]
        name = f"{LABELS[rt]} {version_of(RUNTIME_DISTS[rt]) or ''} {kind}, {th} thread{'s' if th > 1 else ''}"
        if "error" in r:
            rows.append(Row(name, "ms", note=f"unavailable: {r['error']}"))
            continue
        note = "; ".join(x for x in (f"load {float(np.median(r['load_ms'])):.0f} ms", r.get("note", "")) if x)
        rows.append(Row(name, "ms", r["samples"], note=note))
    return [r for r in rows if r.samples] + [r for r in rows if not r.samples]


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    res = SectionResult("inference", "2. Inference per window")
    res.notes.append(f"model: {choice.describe()}")
    repeats, passes = (150, 1) if args.quick else (400, 2)
    rows = measure(choice, (1, 2), repeats, passes)
    res.tables.append(
        Table(
            f"TfliteModel.predict per window, {choice.kind} model (quantise + invoke + dequantise)",
            rows,
            note="ms per window; ratio to the first row",
        )
    )
    if choice.float_model is None:
        tiny = tiny_model(bench_cache_dir())
        res.notes.append(
            "the shipped bundle has no model_float.tflite (genre-train --save-float), so float vs int8 is compared "
            "on the tiny test model (tests/tiny_model.py: Conv1D(8) + dense, untrained) instead"
        )
        res.tables.append(
            Table(
                "float vs int8 on the tiny test model, 1 thread",
                measure(tiny, (1,), repeats, 1),
                note="ms per window; ratio to the first row",
            )
        )
    measured = [r for r in rows if r.samples]
    if measured:
        res.facts = {"first": measured[0].name, "rows": {r.name: r.median for r in measured}}
        best = min(measured, key=lambda r: r.median)
        worst = max(measured, key=lambda r: r.median)
        res.headline.append(
            f"Inference per window ({choice.kind} int8 model): {measured[0].name} {measured[0].median:.3f} ms; "
            f"fastest {best.name} ({best.median / measured[0].median:.2f}x), slowest {worst.name} "
            f"({worst.median / measured[0].median:.1f}x)."
        )
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        runtime, model, bundle, threads, repeats = sys.argv[2:7]
        doc = worker(Path(model), Path(bundle), runtime, int(threads), int(repeats))
        print(json.dumps(doc))
        return
    section_main("inference", run)


if __name__ == "__main__":
    main()
