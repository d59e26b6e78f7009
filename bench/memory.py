"""Section 5: resident memory of the daemon's import path and after the model is loaded, each stage in a fresh
interpreter (RSS only grows, so stages measured in one process would hide each other)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO, Row, SectionResult, Table, Target, section_main
from bench.model import model_from_dir

HEAVY = ("tensorflow", "keras", "librosa", "numba", "matplotlib", "sklearn", "pyaudio")
STAGES = {
    "python": "python + psutil (baseline)",
    "import": "import daemon.cli (what genre-daemon imports)",
    "numpy": "  where the rest goes: + import numpy",
    "features": "  + import daemon.pipeline, edge.features (scipy.fft, psf, soundfile, soxr)",
    "runtime": "  + the TFLite runtime's Interpreter module",
    "model": "import daemon.cli + load_bundle + one classified window",
    "tensorflow": "import tensorflow (for scale; never on the Pi)",
}


# Run with ``python -c`` so nothing of the bench (numpy, edge) is imported before the stage itself.
WORKER = """
import json, os, sys
stage, bundle = sys.argv[1], sys.argv[2]
import psutil
if stage in ("import", "numpy", "features", "runtime", "model"):
    import daemon.cli
if stage in ("numpy", "features", "runtime"):
    import numpy
if stage in ("features", "runtime"):
    import daemon.pipeline, edge.decide.classifier, edge.features
if stage == "runtime":
    from edge.runtime import load_interpreter_class
    load_interpreter_class()
if stage == "model":
    import numpy as np
    from edge.bundle import load_bundle
    from edge.decide.classifier import Classifier
    b = load_bundle(bundle)
    c = Classifier(b.spec, b.model, b.decision)
    rng = np.random.default_rng(0)
    c.push((0.1 * rng.standard_normal(4 * b.spec.sample_rate)).astype("float32"))
if stage == "tensorflow":
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow
heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in HEAVY})
print(json.dumps({"rss_mb": psutil.Process().memory_info().rss / 2**20, "heavy": heavy, "modules": len(sys.modules)}))
"""


def run_worker(stage: str, bundle: Path) -> dict[str, Any]:
    code = f"HEAVY = {HEAVY!r}\n{WORKER}"
    cmd = [sys.executable, "-c", code, stage, str(bundle)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    res = SectionResult("memory", "5. Memory")
    res.notes.append(f"model: {choice.describe()}")
    repeats = 1 if args.quick else 3
    rows = []
    heavy_after_import: list[str] = []
    for stage, label in STAGES.items():
        if stage == "tensorflow" and args.quick:
            continue
        row = Row(label, "MB")
        for _ in range(repeats):
            out = run_worker(stage, choice.bundle)
            if "error" in out:
                row.note = f"failed: {out['error']}"
                break
            row.samples.append(out["rss_mb"])
            row.extra = {"heavy_modules": out["heavy"], "modules": out["modules"]}
        if stage == "import":
            heavy_after_import = list(row.extra.get("heavy_modules", []))
            row.note = f"tensorflow imported: {'yes' if 'tensorflow' in heavy_after_import else 'no'}"
            if heavy_after_import:
                row.note += f"; heavy modules: {', '.join(heavy_after_import)}"
        elif "modules" in row.extra:
            row.note = row.note or f"{row.extra['modules']} modules"
        rows.append(row)
    res.tables.append(Table("RSS by stage (fresh interpreter per stage)", rows, note="MB resident; ratio to baseline"))
    tf_loaded = "tensorflow" in heavy_after_import
    res.targets.append(
        Target('"tensorflow" in sys.modules after import daemon.cli', 1.0 if tf_loaded else 0.0, "<=", 0.0, "bool")
    )
    res.facts = {r.name: r.median for r in rows}
    res.facts["tensorflow_imported"] = tf_loaded
    by_name = {r.name: r.median for r in rows if r.samples}
    imported, loaded = by_name.get(STAGES["import"]), by_name.get(STAGES["model"])
    if imported is not None and loaded is not None:
        line = (
            f"Memory: import daemon.cli {imported:.0f} MB RSS (tensorflow imported: {'yes' if tf_loaded else 'no'}), "
            f"{loaded:.0f} MB with the model loaded and one window classified"
        )
        if STAGES["numpy"] in by_name:
            line += f" (numpy alone brings {by_name[STAGES['numpy']] - imported:.0f} MB)"
        if STAGES["tensorflow"] in by_name:
            line += f"; import tensorflow alone {by_name[STAGES['tensorflow']]:.0f} MB"
        res.headline.append(line + ".")
    return res


if __name__ == "__main__":
    section_main("memory", run)
