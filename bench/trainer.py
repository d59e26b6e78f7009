"""Section 4: the trainer's throughput on the shared GTZAN subset, for the MFCC CNN family (the recipes behind the
lite bundle). The tagger's training (frozen MSD_musicnn embeddings + a linear head) is not timed here.

Feature extraction (trainer.data.dataset.extract_features, clean variant) with 1 and 2 worker processes into
an empty cache (cold) and again from the filled cache; training windows/s per epoch for both recipes
(the per-epoch figure is (t(3 epochs) - t(1 epoch)) / 2, so model building and graph tracing are not
counted as training); export of the trained model to float and int8 TFLite. TensorFlow is imported only
after feature extraction, as in ``genre-train``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import SHARED_GTZAN, Row, SectionResult, Table, Target, section_main

CLIPS_TARGET = 1000
TARGET_SECONDS = 60.0


def pick_clips(n: int) -> list[Any]:
    """``n`` decodable clips, round-robin over genres so every genre is in the subset."""
    from trainer.data.dataset import discover

    clips, _ = discover(SHARED_GTZAN)
    by_genre: dict[str, list[Any]] = {}
    for c in clips:
        by_genre.setdefault(c.genre, []).append(c)
    out: list[Any] = []
    i = 0
    while len(out) < n and any(i < len(v) for v in by_genre.values()):
        out.extend(v[i] for v in by_genre.values() if i < len(v))
        i += 1
    return out[:n]


def extraction(clips: list[Any], spec: Any, work: Path, repeats: int) -> tuple[list[Row], dict[str, float]]:
    """Cold and cached runs per worker count, plus a 2-clip cold run that isolates the fixed start-up cost.

    Extrapolation to 1000 clips: start-up + 998 x the marginal cost per clip, (T(n) - T(2)) / (n - 2).
    """
    from trainer.data.dataset import extract_features

    cpu: dict[int, list[float]] = {1: [], 2: []}

    def cpu_s() -> float:
        # Pool workers are reaped when the pool closes, so RUSAGE_CHILDREN holds their CPU time.
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def timed(subset: list[Any], workers: int, cache: Path, record: bool = False) -> float:
        t0, c0 = time.perf_counter(), cpu_s()
        extract_features(subset, spec, ("clean",), cache_dir=cache, workers=workers, progress=False)
        if record:
            cpu[workers].append((cpu_s() - c0) / len(subset))
        return time.perf_counter() - t0

    names = ("cold, 1 worker", "cold, 2 workers", "cached, 1 worker", "cached, 2 workers")
    rows = {k: Row(k, "ms/clip") for k in names}
    startup: dict[int, list[float]] = {1: [], 2: []}
    for r in range(repeats):
        for workers in (1, 2):
            label = f"{workers} worker{'s' if workers > 1 else ''}"
            cache = work / f"cache-{workers}-{r}"
            shutil.rmtree(cache, ignore_errors=True)
            cold = timed(clips, workers, cache, record=True)
            cached = timed(clips, workers, cache)
            shutil.rmtree(cache, ignore_errors=True)
            small = timed(clips[:2], workers, cache, record=True)
            shutil.rmtree(cache, ignore_errors=True)
            rows[f"cold, {label}"].samples.append(cold / len(clips) * 1e3)
            rows[f"cached, {label}"].samples.append(cached / len(clips) * 1e3)
            marginal = (cold - small) / (len(clips) - 2)
            startup[workers].append(small - 2 * marginal)
            rows[f"cold, {label}"].extra.setdefault("marginal_ms", []).append(marginal * 1e3)
    facts: dict[str, float] = {"clips": len(clips)}
    for workers in (1, 2):
        row = rows[f"cold, {workers} worker{'s' if workers > 1 else ''}"]
        marginal_ms = float(np.median(row.extra["marginal_ms"]))
        fixed_s = max(0.0, float(np.median(startup[workers])))
        # record=True appends (n-clip run, 2-clip run) per repeat: marginal CPU/clip excludes worker start-up.
        runs = cpu[workers]
        n = len(clips)
        cpu_ms = (
            float(np.median([(a * n - b * 2) / (n - 2) for a, b in zip(runs[0::2], runs[1::2], strict=True)])) * 1e3
        )
        row.note = (
            f"{1e3 / marginal_ms:.1f} clips/s after a {fixed_s:.1f} s start-up; {cpu_ms:.0f} ms CPU per extra clip"
        )
        facts[f"cpu_ms_per_clip_{workers}w"] = cpu_ms
        facts[f"cold_{workers}_clips_per_s"] = 1e3 / marginal_ms
        facts[f"startup_{workers}_s"] = fixed_s
        facts[f"extrapolated_{CLIPS_TARGET}_{workers}w_s"] = fixed_s + marginal_ms / 1e3 * CLIPS_TARGET
    for name in ("cached, 1 worker", "cached, 2 workers"):
        rows[name].note = f"{1e3 / rows[name].median:.0f} clips/s"
    return list(rows.values()), facts


def profile_extraction(clips: list[Any], spec: Any, work: Path) -> str:
    """cProfile of the in-process (1 worker) cold extraction: where a clip's CPU time goes."""
    import cProfile
    import pstats

    from trainer.data.dataset import extract_features

    cache = work / "cache-profile"
    prof = cProfile.Profile()
    prof.enable()
    extract_features(clips, spec, ("clean",), cache_dir=cache, workers=1, progress=False)
    prof.disable()
    shutil.rmtree(cache, ignore_errors=True)
    stats: Any = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())
    n = len(clips)
    lines = [f"cProfile, cold extraction of {n} clips in-process, own time per clip (total {total / n * 1e3:.1f} ms):"]
    for (file, line, func), (_, _, tottime, _, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:8]:
        where = f"{Path(file).name}:{line}({func})" if file != "~" else func
        lines.append(f"  {tottime / n * 1e3:7.2f} ms  {100 * tottime / total:5.1f}%  {where}")
    lines.append("  (soundfile _cdata_io = libsndfile's Vorbis decode; r2c = the FFT; _block = the rest of the MFCC)")
    return "\n".join(lines)


class _EpochClock(logging.Handler):
    """trainer.model.train logs "epoch i/n" at the end of every epoch: the one hook that survives loop rewrites."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ends: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("epoch"):
            self.ends.append(time.perf_counter())


def training(clips: list[Any], store: Any, labels: tuple[str, ...], epochs: int) -> tuple[list[Row], Any]:
    """Windows/s of every epoch but the first (model build + graph tracing), from trainer.model.train's epoch log."""
    from trainer.augment.windows import cut_windows, fit_normalization
    from trainer.model.recipes import get_recipe
    from trainer.model.train import train
    from trainer.runs.fit import base_spec

    clock = _EpochClock()
    train_log = logging.getLogger("trainer.model.train")
    train_log.addHandler(clock)
    train_log.setLevel(logging.DEBUG)
    train_log.propagate = False
    y = np.array([labels.index(c.genre) for c in clips], dtype=np.int64)
    versions = [[store.get(c.clip_id)] for c in clips]
    rows = []
    last: Any = None
    try:
        for name in ("default", "velardo"):
            rec = get_recipe(name, aug_copies=0, epochs=epochs)
            spec = base_spec(labels, rec)
            if rec.normalize:
                windows = np.concatenate([cut_windows(v[0], spec, spec.hop_frames) for v in versions])
                mean, std = fit_normalization(windows, spec)
                spec = spec.with_updates(mean=mean, std=std)
            clock.ends.clear()
            t0 = time.perf_counter()
            trained = train(rec, spec, versions, y, seed=0)
            total = time.perf_counter() - t0
            last = trained if name == "default" else last
            per_epoch = trained.windows_seen // epochs
            if len(clock.ends) != epochs:
                rows.append(
                    Row(
                        f"recipe {name} ({rec.model}), training",
                        "windows/s",
                        note=f"no per-epoch log from trainer.model.train ({len(clock.ends)} of {epochs})",
                    )
                )
                continue
            rates = [per_epoch / (b - a) for a, b in zip(clock.ends, clock.ends[1:], strict=False)]
            rows.append(
                Row(
                    f"recipe {name} ({rec.model}), training",
                    "windows/s",
                    rates,
                    note=f"{per_epoch} windows/epoch (sampling + augmentation + steps), epochs 2..{epochs}; "
                    f"build + first epoch {clock.ends[0] - t0:.1f} s, whole train() {total:.1f} s",
                )
            )
    finally:
        train_log.removeHandler(clock)
    return rows, last


def export(trained: Any, windows: Any, repeats: int) -> list[Row]:
    from trainer.export.tflite import to_tflite
    from trainer.model.train import prepare

    rep = prepare(windows[:100], trained.spec, trained.recipe)
    rows = [Row("export float TFLite", "s"), Row(f"export int8 TFLite ({rep.shape[0]} representative windows)", "s")]
    for _ in range(repeats):
        t0 = time.perf_counter()
        to_tflite(trained.model, None)
        rows[0].samples.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        to_tflite(trained.model, rep)
        rows[1].samples.append(time.perf_counter() - t0)
    return rows


def run(args: argparse.Namespace) -> SectionResult:
    res = SectionResult("trainer", "4. Trainer (MFCC CNN recipes: the lite bundle's family)")
    if not SHARED_GTZAN.is_dir():
        res.notes.append(f"skipped: no GTZAN data at {SHARED_GTZAN}")
        return res
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger().setLevel(logging.WARNING)
    from trainer.augment.windows import cut_windows
    from trainer.data.dataset import extract_features
    from trainer.model.recipes import get_recipe
    from trainer.runs.fit import base_spec

    n_clips = 12 if args.quick else 40
    clips = pick_clips(n_clips)
    labels = tuple(sorted({c.genre for c in clips}))
    spec = base_spec(labels, get_recipe("default"))
    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    try:
        ext_rows, facts = extraction(clips, spec, work, 1 if args.quick else 2)
        res.tables.append(
            Table(
                f"Feature extraction, clean MFCCs of {len(clips)} GTZAN clips (30 s ogg, decode + MFCC + cache write)",
                ext_rows,
                note="ms per clip (wall time of the whole run / clips, incl. process start-up); ratio to the first row",
            )
        )
        res.profile = profile_extraction(clips[:8], spec, work)
        store = extract_features(clips, spec, ("clean",), cache_dir=work / "train-cache", workers=2, progress=False)
        train_rows, trained = training(clips, store, labels, 3 if args.quick else 5)
        res.tables.append(
            Table(
                "Training throughput (tf.keras, CPU, all cores)",
                train_rows,
                note="windows/s; higher is better",
                lower_is_better=False,
            )
        )
        windows = np.concatenate([cut_windows(store.get(c.clip_id), trained.spec, 43) for c in clips])
        rows = export(trained, windows, 1 if args.quick else 2)
        res.tables.append(Table("Export (TFLiteConverter)", rows, note="seconds"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.targets.append(
        Target(
            f"feature extraction, {CLIPS_TARGET} clips, 2 workers (extrapolated from {len(clips)})",
            facts[f"extrapolated_{CLIPS_TARGET}_2w_s"],
            "<=",
            TARGET_SECONDS,
            "s",
            note="fixed start-up (2-clip run) + 1000 x marginal cost per clip of the cold 2-worker run",
        )
    )
    res.facts = facts
    res.headline.append(
        f"Trainer feature extraction: {facts['cold_1_clips_per_s']:.1f} clips/s with 1 worker, "
        f"{facts['cold_2_clips_per_s']:.1f} clips/s with 2 (marginal, cold cache); {CLIPS_TARGET} clips with 2 workers "
        f"extrapolated to {facts[f'extrapolated_{CLIPS_TARGET}_2w_s']:.0f} s; {facts['cpu_ms_per_clip_1w']:.0f} ms CPU "
        "per clip."
    )
    idle = facts["startup_2_s"] + CLIPS_TARGET * facts["cpu_ms_per_clip_2w"] / 1e3 / 2
    res.notes.append(
        f"load average during this section: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on "
        f"{os.cpu_count()} cores. CPU time per clip is what the work costs whatever the load: with two idle cores "
        f"2 workers would need about {idle:.0f} s for {CLIPS_TARGET} clips (start-up + {CLIPS_TARGET} x CPU per extra "
        "clip / 2; "
        "an estimate, not the target's measurement)."
    )
    return res


if __name__ == "__main__":
    section_main("trainer", run)
