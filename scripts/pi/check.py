"""The verdicts of scripts/pi-check.sh: arm64 against x86, from the files the run wrote (stdlib only).

    python3 check.py RESULTS.json predict ARM.jsonl X86.jsonl
    python3 check.py RESULTS.json mqtt MQTT.log ARM_ID X86_ID
    python3 check.py RESULTS.json set KEY VALUE          # a figure the shell measured (JSON or text)
    python3 check.py RESULTS.json report MARKDOWN SUITE LOG   # (re)write SUITE's section of bench/PI.md

Each check prints what it measured, merges it into RESULTS.json and exits 1 if it fails.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

MAX_DELTA_P = 0.05  # the bound on |p_arm64 - p_x86| for any class of any window or verdict


def merge(results: Path, **items: Any) -> None:
    data = json.loads(results.read_text()) if results.exists() else {}
    data.update(items)
    results.write_text(json.dumps(data, indent=2) + "\n")


def _rows(path: Path) -> tuple[dict[tuple[str, float], dict[str, float]], dict[str, dict[str, Any]]]:
    windows: dict[tuple[str, float], dict[str, float]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        name = Path(row["file"]).name
        if "verdict" in row:
            verdicts[name] = row
        else:
            windows[(name, row["start"])] = row["probabilities"]
    return windows, verdicts


def check_predict(results: Path, arm: Path, x86: Path) -> bool:
    arm_w, arm_v = _rows(arm)
    x86_w, x86_v = _rows(x86)
    ok = True
    if set(arm_w) != set(x86_w) or set(arm_v) != set(x86_v) or not arm_v:
        print(f"predict: different windows or files (arm64 {len(arm_w)}/{len(arm_v)}, x86 {len(x86_w)}/{len(x86_v)})")
        ok = False
    pairs = [(arm_w[k], x86_w[k]) for k in arm_w.keys() & x86_w.keys()]
    pairs += [(arm_v[k]["probabilities"], x86_v[k]["probabilities"]) for k in arm_v.keys() & x86_v.keys()]
    if any(a.keys() != b.keys() for a, b in pairs):
        print("predict: the two sides have different labels (not the same model bundle)")
        ok = False
        pairs = []
    delta = max((abs(a[c] - b[c]) for a, b in pairs for c in a), default=float("inf"))
    verdicts = {k: (arm_v[k]["verdict"], x86_v[k]["verdict"]) for k in sorted(arm_v.keys() & x86_v.keys())}
    same = sum(a == b for a, b in verdicts.values())
    for name, (a, b) in verdicts.items():
        print(f"  {name}: arm64 {a} ({arm_v[name]['confidence']:.3f}), x86 {b} ({x86_v[name]['confidence']:.3f})")
    print(
        f"predict: {len(arm_w)} windows in {len(verdicts)} clips; verdicts equal {same}/{len(verdicts)}; "
        f"max |Δp| = {delta:.4f} (limit {MAX_DELTA_P})"
    )
    ok = ok and same == len(verdicts) and delta <= MAX_DELTA_P
    merge(
        results,
        predict_windows=len(arm_w),
        predict_clips=len(verdicts),
        verdicts_equal=same,
        max_delta_p=round(delta, 5),
        verdicts={k: v[0] for k, v in verdicts.items()},
        predict_ok=ok,
    )
    return ok


def _device_messages(log: Path, device_id: str) -> dict[str, Any]:
    lines = [ln.partition(" ") for ln in log.read_text(errors="replace").splitlines()]
    mine = [(t, p) for t, _, p in lines if device_id in t]
    availability = [p for t, p in mine if t.endswith(f"/{device_id}/availability")]
    genres = [p for t, p in mine if t.endswith(f"/{device_id}/genre")]
    states = [json.loads(p) for t, p in mine if t.endswith(f"/{device_id}/state")]
    discovery = [json.loads(p) for t, p in mine if t.startswith("homeassistant/") and t.endswith("/config") and p]
    options: list[str] = []
    for d in discovery:
        options += d.get("options", [])
    return {
        "availability": availability,
        "genres": genres,
        "states": states,
        "discovery": discovery,
        "options": options,
    }


def check_mqtt(results: Path, log: Path, arm_id: str, x86_id: str) -> bool:
    arm = _device_messages(log, arm_id)
    x86 = _device_messages(log, x86_id)
    problems = []
    if arm["availability"][:1] != ["online"] or arm["availability"][-1:] != ["offline"]:
        problems.append(f"availability {arm['availability']} (want online first, offline last)")
    if not arm["discovery"] or not arm["options"]:
        problems.append("no Home Assistant discovery config with the genre options")
    if not arm["states"]:
        problems.append("no state messages")
    bad = sorted({g for g in arm["genres"] if g not in arm["options"]})
    if bad:
        problems.append(f"genre payloads outside the discovery options: {bad}")
    # At --speed 0 the outbox sends only the newest state, so each side receives a different sample of
    # the windows: compare the genre of every window (stream_s) both sides received.
    arm_by_t = {s.get("stream_s"): s.get("genre") for s in arm["states"] if s.get("stream_s") is not None}
    x86_by_t = {s.get("stream_s"): s.get("genre") for s in x86["states"] if s.get("stream_s") is not None}
    common = sorted(arm_by_t.keys() & x86_by_t.keys())
    same_windows = sum(arm_by_t[t] == x86_by_t[t] for t in common)
    arm_seq, x86_seq = [arm_by_t[t] for t in common], [x86_by_t[t] for t in common]
    if not common or arm_seq != x86_seq:
        problems.append(f"genre differs from x86 in {len(common) - same_windows} of {len(common)} common windows")
    print(
        f"daemon: availability {' -> '.join(arm['availability'])}; {len(arm['discovery'])} discovery configs; "
        f"{len(arm['states'])} states; genre topic {' -> '.join(arm['genres'])}; "
        f"same genre as x86 in {same_windows}/{len(common)} common windows"
    )
    for p in problems:
        print(f"daemon: FAIL {p}")
    merge(
        results,
        daemon_states=len(arm["states"]),
        daemon_genres=arm["genres"],
        daemon_discovery=len(arm["discovery"]),
        daemon_same_as_x86=bool(common) and arm_seq == x86_seq,
        daemon_ok=not problems,
    )
    return not problems


# apt's and pip's download lines name mirror hosts; a recorded log keeps what ran, not where it came from.
_DOWNLOAD_LINE = re.compile(r"^(Get:\d+ https?://|Downloading https?://|Hit:\d+ https?://|Ign:\d+ https?://)")


def recorded_log(text: str) -> str:
    """The check's output as PI.md records it: package-download lines dropped, with a count in their place."""
    lines = text.rstrip().splitlines()
    kept = [ln for ln in lines if not _DOWNLOAD_LINE.match(ln)]
    dropped = len(lines) - len(kept)
    return "\n".join(kept + ([f"({dropped} package-download lines left out)"] if dropped else []))


def write_report(results: Path, markdown: Path, suite: str, log: Path) -> None:
    data = json.loads(results.read_text())
    text = (
        markdown.read_text()
        if markdown.exists()
        else (
            "# genre-pi on arm64: `scripts/pi-check.sh`\n\n"
            "An emulated arm64 Debian (qemu-user-static + binfmt_misc, debootstrap) with a Raspberry Pi 4's\n"
            "`/proc/cpuinfo`, the repository's installer run inside it, and the results compared with x86.\n"
            "Each section below is written by `bash scripts/pi-check.sh SUITE --record`.\n"
        )
    )
    d = data
    body = [
        f"## {suite}\n",
        f"- when: {d.get('when', '?')}, commit `{d.get('commit', '?')}`, host {d.get('host', '?')}",
        f"- chroot: Debian {suite} arm64, Python {d.get('python', '?')}, {d.get('runtime', '?')} "
        f"{d.get('runtime_version', '')}, numpy {d.get('numpy', '?')}",
        f"- durations (s): base {d.get('t_base_s', '?')} ({d.get('base', '?')}), "
        f"installer {d.get('t_install_s', '?')}, "
        f"genre-predict {d.get('t_predict_s', '?')}, daemon {d.get('t_daemon_s', '?')}, "
        f"uninstall {d.get('t_uninstall_s', '?')}, total {d.get('t_total_s', '?')}",
        f"- genre-predict on {d.get('predict_clips', '?')} clips ({d.get('predict_windows', '?')} windows): "
        f"verdicts equal to x86 {d.get('verdicts_equal', '?')}/{d.get('predict_clips', '?')}, "
        f"**max |Δp| = {d.get('max_delta_p', '?')}** (limit {MAX_DELTA_P}); verdicts {d.get('verdicts', {})}",
        f"- genre-daemon on a file → mosquitto on the host: {d.get('daemon_states', '?')} states, "
        f"{d.get('daemon_discovery', '?')} discovery configs, genre topic {' → '.join(d.get('daemon_genres', []))}, "
        f"same genre as x86 in every common window: {d.get('daemon_same_as_x86', '?')}, "
        f"exit {d.get('daemon_exit', '?')}",
        f"- `--purge` left behind: {d.get('leftovers') or 'nothing'}",
        f"- result: **{'PASS' if d.get('ok') else 'FAIL'}**\n",
        "<details><summary>output</summary>\n\n```",
        recorded_log(log.read_text(errors="replace")),
        "```\n</details>\n",
    ]
    section = "\n".join(body)
    pattern = re.compile(rf"^## {re.escape(suite)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    markdown.write_text(text)


def main(argv: list[str]) -> int:
    results, what, *rest = argv
    path = Path(results)
    if what == "predict":
        return 0 if check_predict(path, Path(rest[0]), Path(rest[1])) else 1
    if what == "mqtt":
        return 0 if check_mqtt(path, Path(rest[0]), rest[1], rest[2]) else 1
    if what == "set":
        key, value = rest
        try:
            merge(path, **{key: json.loads(value)})
        except json.JSONDecodeError:
            merge(path, **{key: value})
        return 0
    if what == "report":
        write_report(path, Path(rest[0]), rest[1], Path(rest[2]))
        return 0
    print(f"check.py: unknown check {what}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
