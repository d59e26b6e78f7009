"""Shared bench plumbing: timing loops, statistics, result rows, section subprocesses, the machine description.

Every section runs in its own Python subprocess (``python -m bench.<section> --out FILE``): tensorflow and
tflite_runtime cannot share a process, BLAS thread pools left spinning by one measurement must not slow the
next section, and RSS figures need a fresh interpreter. A section writes one JSON document (see
:class:`SectionResult`); ``bench.__main__`` merges them into RESULTS.md and results.json.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
SHARED_GTZAN = REPO.parent / "shared" / "gtzan"


@dataclass
class Row:
    """One measured thing. ``samples`` are raw measurements in ``unit``; the table shows median and p90."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return float(np.median(self.samples)) if self.samples else math.nan

    @property
    def p90(self) -> float:
        return float(np.percentile(self.samples, 90)) if self.samples else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": _finite(self.median),
            "p90": _finite(self.p90),
            "min": _finite(float(np.min(self.samples))) if self.samples else None,
            "n": len(self.samples),
            "note": self.note,
            "extra": self.extra,
        }


@dataclass
class Table:
    """Rows compared against the first one (``ratio`` = row median / first row median)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    note: str = ""
    lower_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        base = self.rows[0].median if self.rows else math.nan
        rows = []
        for r in self.rows:
            d = r.to_dict()
            d["ratio"] = _finite(r.median / base) if base and not math.isnan(base) else None
            rows.append(d)
        return {"title": self.title, "note": self.note, "lower_is_better": self.lower_is_better, "rows": rows}


@dataclass
class Target:
    name: str
    measured: float | None
    op: str  # "<=" or ">="
    target: float
    unit: str
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.measured is None or math.isnan(self.measured):
            return None
        return self.measured <= self.target if self.op == "<=" else self.measured >= self.target

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measured"] = _finite(self.measured) if self.measured is not None else None
        d["passed"] = self.passed
        return d


@dataclass
class SectionResult:
    """What one section subprocess reports."""

    key: str
    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: str = ""  # where the time goes (cProfile/py-spy summary), shown verbatim
    facts: dict[str, Any] = field(default_factory=dict)  # headline numbers, machine-readable
    headline: list[str] = field(default_factory=list)  # the same as sentences, shown at the top of RESULTS.md
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "tables": [t.to_dict() for t in self.tables],
            "targets": [t.to_dict() for t in self.targets],
            "notes": self.notes,
            "profile": self.profile,
            "facts": self.facts,
            "headline": self.headline,
            "seconds": round(self.seconds, 2),
        }


def _finite(x: float | None) -> float | None:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return float(x)


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (after ``warmup`` untimed calls); GC off while timing."""
    for _ in range(warmup):
        fn()
    out = []
    enabled = gc.isenabled()
    gc.disable()  # a collection landing in one sample is noise of this harness, not of the code measured
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return out


def interleaved(fns: Sequence[Callable[[], object]], repeats: int, rounds: int = 5) -> list[list[float]]:
    """Time several functions in alternating rounds, so a noisy neighbour hits all of them alike."""
    per = max(1, repeats // rounds)
    out: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        for i, fn in enumerate(fns):
            out[i].extend(time_calls(fn, per, warmup=3 if r == 0 else 1))
    return out


def section_main(key: str, run: Callable[[argparse.Namespace], SectionResult]) -> None:
    """Entry point of ``python -m bench.<key> --out FILE [--quick]``."""
    p = argparse.ArgumentParser(prog=f"python -m bench.{key}")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--lite-dir", type=Path, default=None, help="the lite bundle measured beside the shipped one")
    p.add_argument("--work-dir", type=Path, default=None)
    args = p.parse_args()
    t0 = time.perf_counter()
    result = run(args)
    result.seconds = time.perf_counter() - t0
    args.out.write_text(json.dumps(result.to_dict(), indent=1) + "\n")


def run_section(key: str, out: Path, quick: bool, extra: Sequence[str] = (), timeout_s: float = 600) -> dict[str, Any]:
    """Run one section in a fresh interpreter; a crash becomes a section with the error as a note."""
    cmd = [sys.executable, "-m", f"bench.{key}", "--out", str(out), *(["--quick"] if quick else []), *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
        error = "" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout_s:.0f} s"
    if not error and out.is_file():
        doc: dict[str, Any] = json.loads(out.read_text())
        return doc
    return {
        "key": key,
        "title": key,
        "tables": [],
        "targets": [],
        "notes": [f"section failed: {error or 'no output'}"],
        "profile": "",
        "facts": {},
        "headline": [],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """x86: "model name"; a Raspberry Pi's kernel reports "Model" (the board) and "Hardware" instead."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    for key in ("model name", "model", "hardware"):
        if fields.get(key) and not fields[key].isdigit():
            return fields[key]
    return platform.processor() or platform.machine()


def blas_info() -> str:
    """numpy's BLAS as built, plus the live thread pools (threadpoolctl, if installed)."""
    parts = []
    try:
        cfg: Any = np.__config__.CONFIG  # type: ignore[attr-defined]
        blas = cfg["Build Dependencies"]["blas"]
        parts.append(f"{blas.get('name')} {blas.get('version')}")
    except (AttributeError, KeyError, TypeError):
        parts.append("unknown")
    try:
        threadpool_info = importlib.import_module("threadpoolctl").threadpool_info  # untyped; librosa brings it
        pools = [
            f"{p.get('internal_api')} {p.get('version')} x{p.get('num_threads')} threads" for p in threadpool_info()
        ]
        if pools:
            parts.append("pools: " + "; ".join(pools))
    except ImportError:
        pass
    return ", ".join(parts)


def machine() -> dict[str, Any]:
    import psutil

    try:
        mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=5).stdout.splitlines()
        mosquitto = next((line.strip() for line in mosq if "version" in line.lower()), None)
    except (OSError, subprocess.SubprocessError):
        mosquitto = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    load = os.getloadavg()
    return {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "scipy": version_of("scipy"),
        "python_speech_features": version_of("python_speech_features"),
        "librosa": version_of("librosa"),
        "ai_edge_litert": version_of("ai-edge-litert"),
        "tflite_runtime": version_of("tflite-runtime"),
        "tensorflow": version_of("tensorflow-cpu") or version_of("tensorflow"),
        "paho_mqtt": version_of("paho-mqtt"),
        "mosquitto": mosquitto,
        "load_avg_at_start": [round(x, 2) for x in load],
        "git_commit": commit,
    }


def music_like(seconds: float, sr: int = 22050, seed: int = 0) -> npt.NDArray[np.float32]:
    """Deterministic harmonic tones with an envelope plus noise (a stand-in when GTZAN is absent)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k, f in enumerate((110.0, 220.0, 330.0, 440.0, 660.0, 880.0), start=1):
        x += np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(2 * np.pi * 0.2 * t))) / k
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t) ** 2
    x += 0.05 * rng.standard_normal(t.size)
    out: npt.NDArray[np.float32] = (0.2 * x / np.max(np.abs(x))).astype(np.float32)
    return out


def gtzan_clips(limit: int | None = None) -> list[Path]:
    """GTZAN clips from the shared data folder, round-robin over genres, or [] if it is absent."""
    if not SHARED_GTZAN.is_dir():
        return []
    by_genre = [sorted(d.glob("*.ogg")) + sorted(d.glob("*.wav")) for d in sorted(SHARED_GTZAN.iterdir()) if d.is_dir()]
    out: list[Path] = []
    i = 0
    while any(i < len(g) for g in by_genre):
        out.extend(g[i] for g in by_genre if i < len(g))
        i += 1
    return out[:limit] if limit else out


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if 0 < ax < 0.01:
        return f"{x:.2g}"
    return f"{x:.{digits}f}"
