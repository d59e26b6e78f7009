"""The `edge` extra (what a Pi installs) must never pull tensorflow, directly or transitively."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "torch", "jax"}


def _declared(extra: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["optional-dependencies"][extra]]


def _closure(roots: list[Requirement]) -> set[str]:
    """Names reachable from ``roots`` through installed distributions' own metadata."""
    env = {k: str(v) for k, v in default_environment().items()}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(env | {"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name == "genre-pi":
            for extra in req.extras:
                todo.extend(_declared(extra))
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (e.g. a marker for another Python); its name still counts
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate(env | {"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return seen


def test_edge_extra_resolves_without_tensorflow() -> None:
    closure = _closure(_declared("edge"))
    assert {"numpy", "soxr", "paho-mqtt"} <= closure, sorted(closure)
    assert not closure & HEAVY, f"edge pulls {sorted(closure & HEAVY)}"
    # The front ends are numpy alone: a Pi installs neither scipy nor python_speech_features.
    assert not closure & {"scipy", "python-speech-features"}, sorted(closure)


def test_train_extra_does_pull_tensorflow() -> None:
    # Guards the test above: the same resolver must see tensorflow where it is declared.
    closure = _closure(_declared("train"))
    assert closure & {"tensorflow", "tensorflow-cpu"}, sorted(closure)


def test_edge_runtime_markers_pick_one_lite_runtime_per_python() -> None:
    reqs = {canonicalize_name(r.name): r for r in _declared("edge")}
    for version, wanted in (("3.11", "tflite-runtime"), ("3.13", "ai-edge-litert")):
        env = {k: str(v) for k, v in default_environment().items()} | {"python_version": version, "extra": ""}
        chosen = {n for n in ("tflite-runtime", "ai-edge-litert") if reqs[n].marker.evaluate(env)}  # type: ignore[union-attr]
        assert chosen == {wanted}, f"Python {version} installs {chosen}"
