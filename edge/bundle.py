"""A model bundle is a folder: ``model.tflite`` + ``model.json`` (FeatureSpec + model metadata).

Loading validates everything up front (files present, JSON sane, spec valid, tensor shapes and
label count agree) so a bad bundle fails at start with one line, never mid-stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.decide.params import DecisionParams
from edge.decide.tags import Tags, sensor_params
from edge.errors import ModelBundleError, SpecError, UsageError
from edge.runtime import TfliteModel
from edge.spec import FeatureSpec

MODEL_FILE = "model.tflite"
SPEC_FILE = "model.json"
BUNDLE_FORMAT = "genre-pi-bundle"


def default_bundle_dir() -> Path:
    """The model shipped inside the package (trained on GTZAN by ``genre-train``)."""
    return Path(__file__).resolve().parent / "models" / "default"


@dataclass
class Bundle:
    path: Path
    spec: FeatureSpec
    model: TfliteModel
    meta: dict[str, Any]
    decision: DecisionParams  # the rule tuned with this model (model.json "decision"), else the defaults
    tags: Tags | None = None  # a tagger bundle's tag scores (output 1) and the sensors read from them

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unknown"))


def write_bundle_json(directory: Path, spec: FeatureSpec, meta: dict[str, Any]) -> Path:
    """Write ``model.json`` (the FeatureSpec plus free-form model metadata) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SPEC_FILE
    doc = {"format": BUNDLE_FORMAT, "feature_spec": spec.to_dict(), "model": meta}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a spec
    return path


def read_bundle_json(directory: Path) -> tuple[FeatureSpec, dict[str, Any]]:
    """Parse and validate ``model.json`` of a bundle directory."""
    path = directory / SPEC_FILE
    if not path.is_file():
        raise ModelBundleError(f"{path}: missing (a bundle needs {MODEL_FILE} and {SPEC_FILE})")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelBundleError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ModelBundleError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict) or "feature_spec" not in doc:
        raise ModelBundleError(f"{path}: not a model bundle description (no 'feature_spec')")
    try:
        spec = FeatureSpec.from_dict(doc["feature_spec"])
    except SpecError as exc:
        raise ModelBundleError(f"{path}: {exc}") from None
    meta = doc.get("model", {})
    if not isinstance(meta, dict):
        raise ModelBundleError(f"{path}: 'model' must be an object")
    return spec, meta


def bundle_decision(meta: dict[str, Any], where: Path) -> DecisionParams:
    """The decision rule a bundle carries (``model.decision`` in model.json); the defaults for older bundles."""
    doc = meta.get("decision")
    if doc is None:
        return DecisionParams()
    if not isinstance(doc, dict):
        raise ModelBundleError(f"{where / SPEC_FILE}: 'model.decision' must be an object")
    try:
        return DecisionParams.from_dict(doc)
    except (TypeError, ValueError) as exc:
        raise ModelBundleError(f"{where / SPEC_FILE}: model.decision: {exc}") from None


def bundle_tags(meta: dict[str, Any], where: Path, output_sizes: tuple[int, ...]) -> Tags | None:
    """The tag section of a bundle, checked against the model's outputs; None for a bundle without tags."""
    doc = meta.get("tags")
    if doc is None:
        return None
    bad = f"{where / SPEC_FILE}: model.tags"
    try:
        output, names = int(doc["output"]), tuple(str(n) for n in doc["names"])
        sensors = sensor_params(doc.get("sensors", {}))
        heads = doc.get("heads")
        heads_output = None if heads is None else int(heads["output"])
        head_names = () if heads is None else tuple(str(n) for n in heads["names"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelBundleError(f"{bad}: {exc}") from None
    for k, what in ((output, names), (heads_output, head_names)):
        if k is not None and (not 1 <= k < len(output_sizes) or output_sizes[k] != len(what)):
            raise ModelBundleError(f"{bad}: output {k} should hold {len(what)} scores, but the model's outputs are "
                                   f"{list(output_sizes)}")
    tags = Tags(output, names, sensors, heads_output, head_names)
    missing = [p.tag for p in sensors.values() if p.tag not in tags.readable]
    if missing:
        raise ModelBundleError(f"{bad}: sensors read unknown tags {missing}")
    return tags


def load_bundle(directory: str | Path | None = None, num_threads: int = 1, runtime: str | None = None) -> Bundle:
    """Load and cross-check a bundle; ``None`` means the shipped default model."""
    path = Path(directory) if directory is not None else default_bundle_dir()
    if not path.exists():
        raise UsageError(f"{path}: model directory does not exist")
    if not path.is_dir():
        raise ModelBundleError(f"{path}: a model bundle must be a directory holding {MODEL_FILE} and {SPEC_FILE}")
    spec, meta = read_bundle_json(path)
    decision = bundle_decision(meta, path)
    tflite = path / MODEL_FILE
    if not tflite.is_file():
        raise ModelBundleError(f"{tflite}: missing")
    model = TfliteModel(tflite, num_threads=num_threads, runtime=runtime)
    frames, coeffs = spec.input_shape
    if model.input_elements != frames * coeffs:
        raise ModelBundleError(
            f"{path}: model input {list(model.input_shape[1:])} does not fit the spec's "
            f"{frames} frames x {coeffs} MFCCs"
        )
    if model.output_size != len(spec.labels):
        raise ModelBundleError(
            f"{path}: model has {model.output_size} outputs but the spec lists {len(spec.labels)} labels"
        )
    tags = bundle_tags(meta, path, model.output_sizes)
    return Bundle(path=path, spec=spec, model=model, meta=meta, decision=decision, tags=tags)
