"""``genre-predict AUDIO... [--model DIR] [--hop S] [--json] [--published]``: a per-window timeline and a verdict.

``--published`` shows instead what ``genre-daemon`` would publish at each hop: the file is pushed through
the daemon's own :class:`~edge.decide.classifier.Classifier` (streaming MFCC, level gate, the decision
rule the model carries), a hop of audio at a time as the daemon's sources hand it over.

Each bad file gets one line on stderr and the others are still classified; the exit code is that of
the first failure (2: no such file/usage, 65: undecodable or too short audio, bad model).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from edge.audio import load_audio
from edge.bundle import Bundle, load_bundle
from edge.classify import WindowResult, classify_signal, mean_tags, verdict
from edge.decide.classifier import Classifier
from edge.decide.classifier import WindowResult as Hop
from edge.errors import AudioDecodeError, GenreError, UsageError
from edge.scoring import top_k


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genre-predict", description="Classify the music genre of audio files window by window."
    )
    parser.add_argument("audio", nargs="+", type=Path, help="audio files (wav, ogg, flac, au)")
    parser.add_argument("--model", type=Path, default=None, help="model bundle directory (default: bundled model)")
    parser.add_argument("--hop", type=float, default=None, help="seconds between windows (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print JSON Lines instead of a table")
    parser.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    parser.add_argument("--published", action="store_true",
                        help="what the daemon would publish at each hop (its decision rule), not window verdicts")
    return parser


def _hop_frames(bundle: Bundle, hop_s: float | None) -> int:
    spec = bundle.spec
    if hop_s is None:
        return spec.hop_frames
    if not 0 < hop_s <= spec.window_s:
        raise UsageError(f"--hop must be in (0, {spec.window_s}] seconds, got {hop_s}")
    return spec.frames_for(hop_s)


def _load(path: Path, bundle: Bundle) -> npt.NDArray[np.float32]:
    spec = bundle.spec
    signal = load_audio(path, spec.sample_rate)
    if signal.size < spec.window_span_samples:
        raise AudioDecodeError(
            f"{path}: audio is {signal.size / spec.sample_rate:.2f} s, shorter than one "
            f"{spec.window_span_samples / spec.sample_rate:.2f} s window"
        )
    return signal


def classify_file(path: Path, bundle: Bundle, hop_frames: int) -> list[WindowResult]:
    return classify_signal(_load(path, bundle), bundle, hop_frames)


def published_file(path: Path, bundle: Bundle, hop_frames: int) -> list[Hop]:
    """Every hop's decision, exactly as the daemon makes it (the bundle's rule, windows on the hop grid)."""
    spec = bundle.spec
    signal = _load(path, bundle)
    classifier = Classifier(spec, bundle.model, bundle.decision, hop_frames * spec.hop_length / spec.sample_rate,
                            tags=bundle.tags)
    # Audio up to each window's end per push, as the daemon's sources deliver it: the first window's span, then a
    # hop at a time, so windows close exactly on the hop grid (fixed hop-sized pushes close the first window late
    # whenever the span is not a whole number of hops, e.g. the tagger's 48384 samples at 24064 a hop).
    chunk = classifier.hop_frames * spec.hop_length
    ends = range(spec.window_span_samples, signal.size + chunk, chunk)
    hops = (classifier.push(signal[max(0, end - chunk) if i else 0 : end]) for i, end in enumerate(ends))
    return [h for h in hops if h is not None]


def emit_published(out: TextIO, path: Path, hops: list[Hop], as_json: bool) -> None:
    changes = sum(h.changed for h in hops[1:])
    seconds: dict[str, int] = {}
    for h in hops:
        seconds[h.published] = seconds.get(h.published, 0) + 1
    if as_json:
        for h in hops:
            row = {"file": str(path), "time": round(h.stream_s, 3), "published": h.published,
                   "confidence": round(h.confidence, 5), "candidate": h.candidate, "changed": h.changed,
                   **({"sensors": h.sensors} if h.sensors else {})}
            out.write(json.dumps(row) + "\n")
        out.write(json.dumps({"file": str(path), "hops": len(hops), "changes": changes, "hops_by_state": seconds})
                  + "\n")
        return
    out.write(f"{path}\n  {'time (s)':>8}  {'published':<10} {'conf':>5}  {'this hop':<10}  sensors\n")
    for h in hops:
        mark = "*" if h.changed else " "
        sensors = ", ".join(f"{k} {v}" for k, v in h.sensors.items())
        out.write(f"  {h.stream_s:8.1f} {mark}{h.published:<10} {h.confidence:5.2f}  {h.candidate:<10}  {sensors}\n")
    share = ", ".join(f"{k} {v}" for k, v in sorted(seconds.items(), key=lambda kv: -kv[1]))
    out.write(f"  {len(hops)} hops, {changes} changes; hops by state: {share}\n\n")


def _probs_dict(probs: npt.NDArray[np.float32], labels: tuple[str, ...]) -> dict[str, float]:
    return {label: round(float(p), 5) for label, p in zip(labels, probs, strict=True)}


def _tags_dict(scores: npt.NDArray[np.float32] | None, names: tuple[str, ...], top: int | None = None
               ) -> dict[str, dict[str, float]]:
    """``{"tags": {name: score}}`` (the ``top`` highest, or all, best first); empty without tags."""
    if scores is None:
        return {}
    order = np.argsort(scores)[::-1][:top]
    return {"tags": {names[i]: round(float(scores[i]), 4) for i in order}}


def emit_json(out: TextIO, path: Path, results: list[WindowResult], labels: tuple[str, ...],
              tag_names: tuple[str, ...] = ()) -> None:
    for r in results:
        best = int(np.argmax(r.probs))
        row = {
            "file": str(path),
            "start": round(r.start_s, 3),
            "end": round(r.end_s, 3),
            "genre": labels[best],
            "confidence": round(float(r.probs[best]), 5),
            "probabilities": _probs_dict(r.probs, labels),
            **_tags_dict(r.tags, tag_names, top=5),
        }
        out.write(json.dumps(row) + "\n")
    final = verdict(results)
    best = int(np.argmax(final))
    summary = {
        "file": str(path),
        "verdict": labels[best],
        "confidence": round(float(final[best]), 5),
        "probabilities": _probs_dict(final, labels),
        **_tags_dict(mean_tags(results), tag_names),
    }
    out.write(json.dumps(summary) + "\n")


def emit_table(out: TextIO, path: Path, results: list[WindowResult], labels: tuple[str, ...],
               tag_names: tuple[str, ...] = ()) -> None:
    out.write(f"{path}\n")
    out.write(f"  {'window (s)':>15}  {'genre':<10} {'prob':>5}  top-3\n")
    for r in results:
        top = top_k(r.probs, labels)
        others = ", ".join(f"{g} {p:.2f}" for g, p in top)
        out.write(f"  {r.start_s:6.1f} – {r.end_s:6.1f}  {top[0][0]:<10} {top[0][1]:5.2f}  {others}\n")
    final = verdict(results)
    top = top_k(final, labels)
    out.write(f"  verdict: {top[0][0]} ({top[0][1]:.2f}); runner-up {top[1][0]} ({top[1][1]:.2f})\n")
    tags = _tags_dict(mean_tags(results), tag_names, top=5).get("tags")
    if tags:
        out.write("  tags: " + ", ".join(f"{k} {v:.2f}" for k, v in tags.items()) + "\n")
    out.write("\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="genre-predict: %(message)s")
    try:
        bundle = load_bundle(args.model, num_threads=args.threads)
        hop_frames = _hop_frames(bundle, args.hop)
    except GenreError as exc:
        print(f"genre-predict: {exc}", file=sys.stderr)
        return exc.exit_code
    status = 0
    emit = emit_json if args.json else emit_table
    for path in args.audio:
        try:
            if args.published:
                emit_published(sys.stdout, path, published_file(path, bundle, hop_frames), args.json)
            else:
                emit(sys.stdout, path, classify_file(path, bundle, hop_frames), bundle.spec.labels,
                     bundle.tags.names if bundle.tags else ())
        except GenreError as exc:
            print(f"genre-predict: {exc}", file=sys.stderr)
            status = status or exc.exit_code
            continue
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
