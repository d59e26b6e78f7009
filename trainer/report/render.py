"""report.json (merged across ``train`` and ``compare`` runs) and report.md; the figures are in ``plots``.

Each command updates only its own sections of an existing report.json, so the committed bundle can
hold both the shipped model's numbers and the recipe comparison.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trainer.evaluate.metrics import MIN_TEST_CLIPS
from trainer.report.playlist_report import md_lines

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
ROWS = (("velardo_segment_split", "Velardo, split by segment (LEAKY)"),
        ("velardo_clip_split", "Velardo, split by clip"),
        ("default_clip_split", "default, split by clip"),
        ("distilled_clip_split", "distilled, split by clip"),
        ("tagger_linear_clip_split", "tagger + clean linear head, split by clip"),
        ("tagger_room_clip_split", "tagger + room-trained linear head, split by clip"),
        ("tagger_clip_split", "tagger (ships), gated heads, split by clip"))
# 10-genre accuracy % on the complete fault-filtered split (Kereliuk, Sturm & Larsen 2015), as quoted in issue 12.
PUBLISHED_FAULT_FILTERED = {"MFCC + SVM": 53.4, "CLMR": 68.6, "VGGish": 77.2, "Jukebox": 79.7}
_PROTOCOL = {"artist": "by artist (an artist's clips and repeated excerpts in one fold, stratified by genre)",
             "clip": "by clip (the data folder has no artist metadata: optimistic, artists leak across folds)"}


# Keys every command adds its own entries to: ``train`` defines the recipe it ships, ``compare`` the ones it
# compares, and one report holds both (replacing the key dropped the compared recipes' definitions).
ALWAYS_MERGED = ("recipe_definitions",)


def update_report(out: Path, sections: dict[str, Any], merge: tuple[str, ...] = ()) -> dict[str, Any]:
    """Merge ``sections`` into ``out/report.json`` and re-render report.md.

    Top-level keys are replaced, except those in ``merge`` and :data:`ALWAYS_MERGED`, whose entries join the
    existing ones (ablation rows, recipe definitions).
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_JSON
    doc: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    merged = (*merge, *ALWAYS_MERGED)
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if key in merged else value
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n")
    tmp.replace(path)
    (out / REPORT_MD).write_text(render_md(doc))
    return doc


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _pct(stat: Any) -> str:
    if isinstance(stat, dict):
        m, s = stat.get("mean", float("nan")), stat.get("std", float("nan"))
        return "–" if m != m else f"{100 * m:.1f} ± {100 * s:.1f}"
    if isinstance(stat, float | int):
        return "–" if isinstance(stat, float) and math.isnan(stat) else f"{100 * stat:.1f}"
    return "–"


def _recipe_table(recipes: dict[str, Any], by_clip: dict[str, Any] | None = None,
                  protocol: str = "clip") -> list[str]:
    """One row per run kind; with ``by_clip`` a last column gives the same recipe on folds by clip (artist effect)."""
    head = "| recipe | split | segment acc % | segment macro % | clip acc % | clip macro % | params | train s/fold |"
    rule = "|---|---|---|---|---|---|---|---|"
    if by_clip is not None:
        head, rule = head + " clip macro %, folds by clip |", rule + "---|"
    lines = [head, rule]
    named = dict(ROWS)
    extra = [(k, f"{k.removesuffix('_clip_split')}, split by clip") for k in recipes if k not in named]
    for key, title in (*ROWS, *extra):
        r = recipes.get(key)
        if not r:
            continue
        name, split = title.split(", ", 1)
        if protocol == "artist" and key.endswith("clip_split"):
            split = "by artist"
        row = (f"| {name} | {split} | {_pct(r['segment_accuracy'])} | {_pct(r['segment_macro_accuracy'])} | "
               f"{_pct(r['clip_accuracy'])} | {_pct(r['clip_macro_accuracy'])} | {r['params']:,} | "
               f"{r['train_seconds']['mean']:.0f} |")
        if by_clip is not None:
            other = by_clip.get(key)
            row += f" {_pct(other['clip_macro_accuracy']) if other else 'not run'} |"
        lines.append(row)
    return lines


def _robust_table(rob: dict[str, Any]) -> list[str]:
    conds = list(next(iter(rob.values())).keys()) if rob else []
    lines = ["| recipe | " + " | ".join(conds) + " | clean → typical |", "|---|" + "---|" * (len(conds) + 1)]
    for key, stats in rob.items():
        cells = [_pct(stats[c]["clip_macro_accuracy"]) for c in conds]
        drop = "–"
        if "typical" in stats:
            d = stats["clean"]["clip_macro_accuracy"]["mean"] - stats["typical"]["clip_macro_accuracy"]["mean"]
            drop = f"{-100 * d:+.1f}"
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {drop} |")
    return lines


def _clips_cell(n: int) -> str:
    """Test clips of a genre; fewer than MIN_TEST_CLIPS are flagged (its recall moves 5+ points per clip)."""
    return f"{n} ⚠" if n < MIN_TEST_CLIPS else str(n)


_THIN_NOTE = (f"⚠ fewer than {MIN_TEST_CLIPS} test clips over all folds: that genre's precision and recall are "
              "too noisy to compare.")


def _per_genre(per: dict[str, Any]) -> list[str]:
    lines = ["| genre | precision % | recall % | F1 % | test clips |", "|---|---|---|---|---|"]
    for genre, m in per.items():
        lines.append(f"| {genre} | {100 * m['precision']:.0f} | {100 * m['recall']:.0f} | {100 * m['f1']:.0f} | "
                     f"{_clips_cell(m['support'])} |")
    return [*lines, "", _THIN_NOTE]


def _per_genre_recipes(recipes: dict[str, Any]) -> list[str]:
    keys = [k for k, _ in ROWS if k in recipes]
    lines = ["| genre | test clips | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for genre in recipes[keys[0]]["per_genre_clip"]:
        cells = []
        for k in keys:
            m = recipes[k]["per_genre_clip"][genre]
            cells.append(f"{100 * m['precision']:.0f} / {100 * m['recall']:.0f} / {100 * m['f1']:.0f}")
        support = recipes[keys[0]]["per_genre_clip"][genre]["support"]
        lines.append(f"| {genre} | {_clips_cell(support)} | " + " | ".join(cells) + " |")
    return [*lines, "", _THIN_NOTE]


def _fold_balance(cv: dict[str, Any]) -> list[str]:
    """Test clips per genre per fold: whole artist groups make some folds lopsided, and this shows how much."""
    table = cv.get("genre_per_fold")
    if not table:
        return []
    n = len(next(iter(table.values())))
    lines = ["Test clips per genre and fold:", "", "| genre | " + " | ".join(f"fold {f}" for f in range(n)) + " |",
             "|---|" + "---|" * n]
    lines += [f"| {g} | " + " | ".join(map(str, row)) + " |" for g, row in table.items()]
    return [*lines, ""]


def _fault_filtered_lines(ff: dict[str, Any]) -> list[str]:
    """Our recipes on the fault-filtered split's complete genres beside published 10-genre figures."""
    if not ff:
        return []
    genres = ff["genres"]
    lines = [f"## Fault-filtered split, {len(genres)} genres ({', '.join(genres)})", "",
             f"Train on the train + valid lists ({ff['train_clips']} clips), test on the test list "
             f"({ff['test_clips']} clips), these {len(genres)} genres only: the split of Kereliuk, Sturm & Larsen "
             "(2015) is artist-filtered, and only these genres are (almost) complete in the data folder.", "",
             "| model | genres | clip acc % | clip macro % |", "|---|---|---|---|"]
    for key, title in ROWS:
        r = ff["recipes"].get(key)
        if r:
            lines.append(f"| {title.split(', ', 1)[0]} (ours) | {len(genres)} | {_pct(r['clip_accuracy'])} | "
                         f"{_pct(r['clip_macro_accuracy'])} |")
    for name, acc in ff.get("published_10_genre", {}).items():
        lines.append(f"| {name} (published) | 10 | {acc:.1f} | – |")
    lines += ["", f"**Caveat:** {ff['caveat']}.", ""]
    if ff["recipes"]:
        lines += ["Per genre, test list — precision / recall / F1 %:", "", *_per_genre_recipes(ff["recipes"]), ""]
    return lines


def _false_genre_lines(fg: dict[str, Any]) -> list[str]:
    """Non-music published as a genre, per condition and kind of clip (trainer.evaluate.reject)."""
    if not fg:
        return []
    kinds = list(next(iter(fg.values()))["by_kind"])
    first = next(iter(fg.values()))
    lines = [f"Not music — {first['clips']} clips of speech and household noise in voices and sentences never used "
             "in training, decided exactly as the daemon decides (silence gate, smoothing, confidence gate, "
             "hysteresis): % of windows published as a genre (lower is better).", "",
             "| condition | all | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 2) + "|"]
    for cond, v in fg.items():
        lines.append(f"| {cond} | {100 * v['false_genre_rate']:.1f} | "
                     + " | ".join(f"{100 * v['by_kind'].get(k, 0.0):.0f}" for k in kinds) + " |")
    return [*lines, ""]


def _ablation_lines(rows: dict[str, Any]) -> list[str]:
    """``genre-train ablate`` rows: the default recipe with one thing changed, clean vs a room severity."""
    if not rows:
        return []
    protocols = sorted({r.get("protocol", "clip") for r in rows.values()})
    lines = ["## Ablations: the default recipe with knobs changed (`genre-train ablate`, same folds and seeds, "
             f"folds by {' / '.join(protocols)})", "",
             "Clip macro accuracy %, mean ± std over folds; the loss is paired per fold (same model, clean minus "
             "room).", "", "| row | changed | folds | clean | room | room score | loss clean → room |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        changed = ", ".join(f"{k}={v}" for k, v in r["set"].items()) or "nothing (the default recipe)"
        sev = r["severity"]
        lines.append(f"| {name} | {changed} | {r['folds']} | {_pct(r['clean'])} | {sev} | {_pct(r[sev])} | "
                     f"{_pct(r['loss'])} |")
    return [*lines, ""]


def _tagger_lines(shipped: dict[str, Any], ablations: dict[str, Any]) -> list[str]:
    """The shipped tagger: held-out clips clean, in the training chain's rooms and in the unseen family."""
    rob = shipped["robustness_int8"]
    check = shipped["bundle_check"]
    train_rooms = [c for c in rob if c != "clean" and not c.startswith("unseen_")]
    unseen = [c for c in rob if c.startswith("unseen_")]
    lines = ["## Shipped model (`model.tflite`): the pretrained tagger + a genre head", "",
             f"Recipe `{shipped['recipe']['name']}`: MSD_musicnn (frozen, {shipped['form']}) and a linear head over "
             f"its window embedding, {shipped['tflite_bytes'] / 1e6:.2f} MB, trained on {shipped['train_clips']} "
             f"clips (clean + copies {', '.join(shipped.get('copies', [])) or 'none'}), held-out test: "
             f"{shipped['test_clips']} clips of artists it never heard (split {shipped.get('split', 'by artist')}). "
             f"Fitting the head took {shipped['train_seconds']:.0f} s.", "",
             "Held-out clips, clip accuracy / genre macro % (macro over the classes present, `not_music` included):",
             "", "| condition | family | clip acc | macro |", "|---|---|---|---|"]
    for cond in ("clean", *train_rooms, *unseen):
        family = "—" if cond == "clean" else ("unseen (evaluation only)" if cond in unseen else "training chain")
        lines.append(f"| {cond} | {family} | {_pct(rob[cond]['clip_accuracy'])} | "
                     f"{_pct(rob[cond]['clip_macro_accuracy'])} |")
    if unseen:
        mean = sum(rob[c]["clip_macro_accuracy"] for c in unseen) / len(unseen)
        lines += ["", f"Unseen family, macro averaged over its {len(unseen)} conditions: {_pct(mean)} %."]
    lines += ["", f"The exported graph against the trainer's own computation (embedding model + head) on "
              f"{check['windows']} clean windows of {check['clips']} test clips: max |Δp| "
              f"{check['max_abs_prob_diff']:.4f}, top-1 agreement {100 * shipped['parity']['top1_agreement']:.1f} %.",
              ""]
    lines += _false_genre_lines(shipped.get("false_genre", {}))
    lines += _tag_sensor_lines(shipped.get("tag_sensors", {}))
    if ablations:
        lines += ["### What the head was fitted on (same split, same embeddings; clip macro %)", "",
                  "| head fitted on | clean | " + " | ".join(a for a in next(iter(ablations.values()))["macro"]
                                                         if a != "clean") + " | unseen mean |",
                  "|---" * (len(next(iter(ablations.values()))["macro"]) + 2) + "|"]
        for name, row in ablations.items():
            cells = [f"{_pct(v)}" for k, v in row["macro"].items() if k != "clean"]
            lines.append(f"| {name} | {_pct(row['macro']['clean'])} | " + " | ".join(cells)
                         + f" | {_pct(row['unseen_mean'])} |")
        lines.append("")
    lines += ["Per genre (clip level, held-out test, clean):", "", *_per_genre(shipped["per_genre_clip_int8"]), "",
              "![confusion](confusion.png)", "", f"Rebuild: `{shipped['command']}`", ""]
    return lines


def _tag_sensor_lines(sensors: dict[str, Any]) -> list[str]:
    """The vocals and danceable sensors on the held-out clips (genre proxies), in every condition: the sensor
    head that ships, and the raw tag it replaced."""
    if not sensors:
        return []
    conds = list(next(iter(sensors.values()))["held_out"])
    lines = ["### Tag sensors (genres as proxies, held-out clips)", "",
             "Accuracy % (AUC) of a clip's mean log-odds against the sensor's threshold: the sensor head that ships "
             "(a class-balanced logistic head on the embedding, fitted on the training clips clean and in their "
             "room and noise copies, threshold 0), and the raw MSD tag it replaced (threshold fitted on the same "
             "training clips):", "",
             "| sensor | reads | positives vs negatives | test clips | " + " | ".join(conds) + " |",
             "|---" * (4 + len(conds)) + "|"]
    for name, row in sensors.items():
        versus = f"{', '.join(row['positives'])} vs {', '.join(row['negatives'])}"
        for reads, judged in ((row.get("reads", row.get("tag")), row["held_out"]),
                              *(((f"raw tag `{row['raw_tag']['tag']}`", row["raw_tag"]["held_out"]),)
                                if "raw_tag" in row else ())):
            cells = [f"{_pct(judged[c]['accuracy'])} ({judged[c]['auc']:.3f})" for c in conds]
            lines.append(f"| {name} | {reads} | {versus} | {row['test_clips']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _level_lines(level: dict[str, Any] | None) -> list[str]:
    """trainer.evaluate.level_check's rows: the bundle on its held-out music played at fixed levels."""
    if not level:
        return []
    rows = level["rows"]
    return ["### Playback level (the bundle through the device's front end, held-out music clips)", "",
            f"Each of {level['clips']} held-out music clips scaled to one RMS level (as recorded: median "
            f"{level['original_rms_dbfs_median']:.1f} dBFS); the daemon's silence gate is at -50 dBFS by default. "
            f"Bundle {level.get('bundle', '?')}.", "",
            "| level dBFS | " + " | ".join(f"{r['level_dbfs']:g}" for r in rows) + " |",
            "|---|" + "---|" * len(rows),
            "| clip accuracy % | " + " | ".join(_pct(r["clip_accuracy"]) for r in rows) + " |",
            "| genre macro % | " + " | ".join(_pct(r["clip_macro_accuracy"]) for r in rows) + " |",
            "| windows heard as not-music % | " + " | ".join(_pct(r["windows_as_not_music"]) for r in rows) + " |",
            ""]


def render_md(doc: dict[str, Any]) -> str:
    out = ["# genre-pi trainer report", ""]
    data = doc.get("data") or doc.get("data_compare")
    if data:
        out += [f"Data: `{data['root']}` — {data['clips']} clips used, {len(data.get('skipped', []))} skipped.", "",
                "| genre | clips | balanced core |", "|---|---|---|"]
        out += [f"| {g} | {n} | {data['core_counts'].get(g, 0)} |" for g, n in data["counts"].items()]
        out.append("")
        for s in data.get("skipped", []):
            out.append(f"- skipped `{s['clip_id']}`: {s['reason']}")
        out.append("")
    leaky = doc.get("leaky_segment_split")
    if leaky:
        out += ["## LEAKY: split by segment (reproduces the baseline's inflated numbers; not a real estimate)", "",
                f"Recipe `{leaky['recipe']}`: segment accuracy {_pct(leaky['segment_accuracy'])} %, clip accuracy "
                f"{_pct(leaky['clip_accuracy'])} %, clip macro {_pct(leaky['clip_macro_accuracy'])} % "
                f"(`{leaky['command']}`).", ""]
    shipped = doc.get("shipped")
    if shipped and shipped.get("family") == "tagger":
        out += _tagger_lines(shipped, doc.get("tagger_ablations", {}))
    elif shipped:
        out += ["## Shipped model (`model.tflite`, int8)", "",
                f"Recipe `{shipped['recipe']['name']}`, {shipped['params']:,} params, "
                f"{shipped['tflite_bytes'] / 1024:.1f} KB int8 ({shipped['float_tflite_bytes'] / 1024:.1f} KB float). "
                f"Held-out test: {shipped['test_clips']} clips never seen in training "
                f"(trained on {shipped['train_clips']}; split {shipped.get('split', 'by clip')}). "
                f"Training took {shipped['train_seconds']:.0f} s.", "",
                "| metric | float | int8 |", "|---|---|---|",
                f"| clip accuracy % | {_pct(shipped['clip_accuracy_float'])} | {_pct(shipped['clip_accuracy_int8'])} |",
                f"| clip macro accuracy % | {_pct(shipped['clip_macro_accuracy_float'])} | "
                f"{_pct(shipped['clip_macro_accuracy_int8'])} |",
                f"| segment accuracy % | {_pct(shipped['segment_accuracy_float'])} | "
                f"{_pct(shipped['segment_accuracy_int8'])} |", "",
                f"int8 vs float top-1 agreement on test windows: {100 * shipped['int8_float_top1_agreement']:.1f} % "
                f"(mean |Δp| {shipped['parity']['mean_abs_prob_diff']:.4f}).", ""]
        rob = shipped.get("robustness_int8", {})
        if len(rob) > 1:
            out += ["Held-out clips through the room chain (int8, clip macro %): " +
                    ", ".join(f"{k} {_pct(v['clip_macro_accuracy'])}" for k, v in rob.items()), ""]
        out += _false_genre_lines(shipped.get("false_genre", {}))
        teacher = shipped.get("teacher") or {}
        if "head_float" in teacher:
            head = teacher["head_float"]
            out += [f"The teacher ({teacher.get('model', 'musicnn')}, licence {teacher.get('licence', '?')}; never on "
                    "the Pi): its genre head, fitted on the same training clips, on the same test clips (clean): "
                    f"clip accuracy {_pct(head['clip_accuracy'])} %, clip macro {_pct(head['clip_macro_accuracy'])} %"
                    " — what the knowledge is worth before it is squeezed into the student. Per genre:", "",
                    *_per_genre(teacher["per_genre_clip"]), ""]
        out += ["Per genre (clip level, int8, held-out test):", "", *_per_genre(shipped["per_genre_clip_int8"]), "",
                "![confusion](confusion.png) ![curves](curves.png)", "",
                f"Rebuild: `{shipped['command']}`", ""]
    out += _level_lines(doc.get("level_check"))
    protocol = doc.get("protocol", "clip")
    cv = doc.get("cv", {})
    if "recipes" in doc:
        by_clip = doc.get("recipes_by_clip")
        out += [f"## Recipe comparison — all clips ({cv.get('folds', 5)}-fold CV {_PROTOCOL[protocol]}, "
                "mean ± std over folds)", "",
                ("Velardo split by segment is **leaky** (segments of one test clip are in training); "
                 "it is only here to reproduce the baseline's inflated numbers."
                 if "velardo_segment_split" in doc["recipes"] else
                 "Every row on the same folds and seeds; the tagger rows embed each clip once and fit a head per "
                 "fold.")
                + (" The last column is the same recipe on folds by clip, which let an artist's other clips "
                   "into training: the gap is the artist effect." if by_clip is not None else ""), "",
                *_recipe_table(doc["recipes"], by_clip, protocol), ""]
    if "recipes_core" in doc:
        out += [f"## Recipe comparison — balanced 100-clip core ({cv.get('folds', 5)}-fold CV by clip: ten clips a "
                "genre hold too few artists to group)", "", *_recipe_table(doc["recipes_core"]), ""]
    if "robustness" in doc:
        out += [f"## Robustness: clip macro accuracy %, clean vs the room chain (same folds, {protocol} protocol)", "",
                *_robust_table(doc["robustness"]), "", "![robustness](robustness.png)", ""]
    if doc.get("robustness_by_clip"):
        out += ["Folds by clip:", "", *_robust_table(doc["robustness_by_clip"]), ""]
    if "robustness_core" in doc:
        out += ["Balanced core:", "", *_robust_table(doc["robustness_core"]), ""]

    out += [*md_lines(doc), ""] if ("playlist_cv" in doc or "playlist" in doc) else []
    out += _fault_filtered_lines(doc.get("fault_filtered", {}))
    out += _ablation_lines(doc.get("ablations", {}))
    if "recipes" in doc:
        out += [f"Per genre, all clips, clip level pooled over folds ({protocol} protocol) — precision / recall / "
                "F1 %:", "", *_per_genre_recipes(doc["recipes"]), ""]
    if "cv" in doc:
        out += _fold_balance(cv)
        sizes = cv.get("fold_sizes")
        if sizes:
            clips = doc.get("data_compare", {}).get("clips", sum(sizes))
            out += [f"{clips} music clips; test clips per fold: {', '.join(map(str, sizes))} (train = the other "
                    "folds).", ""]
        out += [f"Comparison command: `{cv['command']}` ({cv['seconds'] / 60:.1f} min).", ""]
    if "recipe_definitions" in doc:
        out += ["## Recipes", ""]
        out += [f"- **{k}**: {v['notes']}" for k, v in doc["recipe_definitions"].items()]
        out.append("")
    return "\n".join(out)
