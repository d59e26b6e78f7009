"""The feature contract: one FeatureSpec, saved as JSON beside the .tflite, read by trainer and daemon.

If train and serve ever disagree, the spec is wrong, not the caller: every number that shapes the
model input lives here, including the normalisation statistics learned by the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from edge.errors import SpecError

SPEC_VERSION = 2  # 2: ``front_end`` (a v1 spec is an MFCC spec and still loads)
WINFUNCS = ("hann", "hamming", "rect")
# "mfcc": python_speech_features' MFCCs (the small CNN recipes). "musicnn": the pretrained tagger's input,
# power mel (Slaney, 96 bands at 16 kHz) -> log10(10000 x + 1), kept as all n_mels cepstral coefficients of
# an orthonormal DCT-II (lossless: the model's first op is the inverse DCT, so the tagger reads its own input).
FRONT_ENDS = ("mfcc", "musicnn")


@dataclass(frozen=True)
class FeatureSpec:
    """How audio becomes a model input window.

    Units: ``sample_rate`` in Hz; ``window_s`` and ``hop_s`` in seconds; ``n_fft``, ``win_length``
    and ``hop_length`` in samples. A window is ``frames_per_window`` consecutive complete MFCC frames;
    frames sit on a global grid of ``hop_length`` samples so a stream never recomputes a frame.
    """

    labels: tuple[str, ...]
    front_end: str = "mfcc"
    sample_rate: int = 22050
    window_s: float = 3.0
    hop_s: float = 1.0
    n_mfcc: int = 13
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 512
    n_mels: int = 26
    low_hz: float = 0.0
    high_hz: float | None = None
    # Per-frame floor on the mel energies, this many dB under the frame's strongest band (None = psf's maths,
    # no floor). A room moves the spectrum's valleys: noise fills them, a speaker's and a microphone's band
    # limit digs the top bands ~70 dB deeper than on a studio recording; a floor caps both. Opt-in: on GTZAN
    # it did not improve room accuracy (README, ablations).
    mel_floor_db: float | None = None
    winfunc: str = "hann"
    preemph: float = 0.97
    ceplifter: int = 22
    append_energy: bool = True
    # Per-window cepstral mean normalisation: removes level (c0) and fixed channel colouration
    # (speaker + microphone EQ), which is what a room adds to studio-clean training audio.
    cmn: bool = False
    # Per-window cepstral variance normalisation (after CMN), CMN's companion in noisy speech recognition: each
    # coefficient divided by its own spread over the window, which noise and reverberation change. Opt-in: on
    # GTZAN it cost clean and room accuracy alike (README, ablations).
    cvn: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    spec_version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise SpecError("invalid feature spec: " + "; ".join(problems))

    @property
    def window_samples(self) -> int:
        """Samples in the nominal window (``window_s`` * ``sample_rate``)."""
        return round(self.window_s * self.sample_rate)

    @property
    def frames_per_window(self) -> int:
        """Complete MFCC frames that fit in one window (126 for 3 s at 22050 Hz, hop 512)."""
        return 1 + (self.window_samples - self.win_length) // self.hop_length

    @property
    def window_span_samples(self) -> int:
        """Samples actually covered by ``frames_per_window`` frames (66048 for the defaults)."""
        return (self.frames_per_window - 1) * self.hop_length + self.win_length

    @property
    def hop_frames(self) -> int:
        """Frames between consecutive windows (``hop_s`` rounded to the frame grid, at least 1)."""
        return self.frames_for(self.hop_s)

    def frames_for(self, seconds: float) -> int:
        """``seconds`` rounded to the frame grid (at least one frame): how a hop in seconds becomes frames."""
        return max(1, round(seconds * self.sample_rate / self.hop_length))

    @property
    def input_shape(self) -> tuple[int, int]:
        """(frames, coefficients) of one model input window."""
        return (self.frames_per_window, self.n_mfcc)

    @property
    def effective_high_hz(self) -> float:
        return self.high_hz if self.high_hz is not None else self.sample_rate / 2

    def with_updates(self, **changes: Any) -> FeatureSpec:
        """A copy with ``changes`` applied and validated (e.g. learned ``mean``/``std``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("labels", "mean", "std"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Any) -> FeatureSpec:
        """Build a spec from parsed JSON, rejecting unknown keys, wrong types and future versions."""
        if not isinstance(data, dict):
            raise SpecError(f"feature spec must be a JSON object, got {type(data).__name__}")
        version = data.get("spec_version", SPEC_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise SpecError(f"spec_version must be an integer, got {version!r}")
        if version < 1:
            raise SpecError(f"spec_version must be >= 1, got {version}")
        if version > SPEC_VERSION:
            raise SpecError(
                f"spec_version {version} is newer than this software understands ({SPEC_VERSION}); upgrade genre-pi"
            )
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SpecError(f"unknown feature spec keys: {', '.join(unknown)}")
        if "labels" not in data:
            raise SpecError("feature spec has no 'labels'")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kwargs[name] = _coerce(name, value)
        kwargs["spec_version"] = SPEC_VERSION  # every older version's keys mean the same today (v1 = mfcc)
        return cls(**kwargs)


_INT_FIELDS = {"sample_rate", "n_mfcc", "n_fft", "win_length", "hop_length", "n_mels", "ceplifter", "spec_version"}
_FLOAT_FIELDS = {"window_s", "hop_s", "low_hz", "preemph"}
_OPTIONAL_FLOAT_FIELDS = {"high_hz", "mel_floor_db"}


def _coerce(name: str, value: Any) -> Any:
    """Check one JSON value's type; JSON has no tuples, so lists become tuples here."""
    if name in _INT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpecError(f"{name} must be an integer, got {value!r}")
        return value
    if name in _FLOAT_FIELDS or name in _OPTIONAL_FLOAT_FIELDS:
        if value is None and name in _OPTIONAL_FLOAT_FIELDS:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise SpecError(f"{name} must be a number, got {value!r}")
        return float(value)
    if name in ("append_energy", "cmn", "cvn"):
        if not isinstance(value, bool):
            raise SpecError(f"{name} must be true or false, got {value!r}")
        return value
    if name in ("winfunc", "front_end"):
        if not isinstance(value, str):
            raise SpecError(f"{name} must be a string, got {value!r}")
        return value
    if name == "labels":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError("labels must be a list of strings")
        return tuple(value)
    # mean / std
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise SpecError(f"{name} must be a list of numbers or null")
    return tuple(float(v) for v in value)


def _problems(spec: FeatureSpec) -> list[str]:
    out: list[str] = []
    if len(spec.labels) < 2:
        out.append(f"need at least 2 labels, got {len(spec.labels)}")
    if len(set(spec.labels)) != len(spec.labels):
        out.append("labels must be unique")
    if any(not label or label != label.strip() for label in spec.labels):
        out.append("labels must be non-empty and without surrounding spaces")
    if not 4000 <= spec.sample_rate <= 192000:
        out.append(f"sample_rate {spec.sample_rate} Hz out of range 4000..192000")
    if spec.hop_length <= 0 or spec.win_length <= 0 or spec.n_fft <= 0:
        out.append("n_fft, win_length and hop_length must be positive")
    elif spec.win_length > spec.n_fft:
        # python_speech_features would silently truncate each frame to n_fft samples.
        out.append(f"win_length {spec.win_length} > n_fft {spec.n_fft} would truncate frames")
    if not (spec.window_s > 0 and math.isfinite(spec.window_s)):
        out.append(f"window_s must be positive, got {spec.window_s}")
    elif spec.win_length > 0 and spec.window_samples < spec.win_length:
        out.append("window_s is shorter than one frame")
    if not (0 < spec.hop_s <= spec.window_s):
        out.append(f"hop_s must be in (0, window_s={spec.window_s}], got {spec.hop_s}")
    if not 1 <= spec.n_mfcc <= spec.n_mels:
        out.append(f"n_mfcc must be in 1..n_mels ({spec.n_mels}), got {spec.n_mfcc}")
    if not 0 <= spec.low_hz < spec.effective_high_hz <= spec.sample_rate / 2:
        out.append("need 0 <= low_hz < high_hz <= sample_rate/2")
    if spec.mel_floor_db is not None and not 0 < spec.mel_floor_db <= 200:
        out.append(f"mel_floor_db must be in (0, 200] dB or null, got {spec.mel_floor_db}")
    if spec.front_end not in FRONT_ENDS:
        out.append(f"front_end must be one of {', '.join(FRONT_ENDS)}, got {spec.front_end!r}")
    elif spec.front_end == "musicnn":
        # The tagger reads its mel spectrum back through the inverse DCT: every coefficient must be kept, and
        # nothing MFCC-only may touch it.
        if spec.n_mfcc != spec.n_mels:
            out.append(f"front_end musicnn keeps all n_mels coefficients: n_mfcc must be {spec.n_mels}")
        if spec.preemph or spec.ceplifter or spec.append_energy or spec.cmn or spec.cvn or spec.mel_floor_db:
            out.append("front_end musicnn takes no preemph, ceplifter, append_energy, cmn, cvn or mel_floor_db")
    if spec.winfunc not in WINFUNCS:
        out.append(f"winfunc must be one of {', '.join(WINFUNCS)}, got {spec.winfunc!r}")
    if not 0 <= spec.preemph < 1:
        out.append(f"preemph must be in [0, 1), got {spec.preemph}")
    if spec.ceplifter < 0:
        out.append("ceplifter must be >= 0")
    for name in ("mean", "std"):
        stats = getattr(spec, name)
        if stats is None:
            continue
        if len(stats) != spec.n_mfcc:
            out.append(f"{name} has {len(stats)} values, expected n_mfcc={spec.n_mfcc}")
        if not all(math.isfinite(v) for v in stats):
            out.append(f"{name} has non-finite values")
    if (spec.mean is None) != (spec.std is None):
        out.append("mean and std must both be set or both be null")
    if spec.std is not None and any(v <= 0 for v in spec.std):
        out.append("std values must be > 0")
    if spec.spec_version != SPEC_VERSION:
        out.append(f"spec_version {spec.spec_version} is not {SPEC_VERSION}")
    return out


def musicnn_spec(labels: tuple[str, ...], hop_s: float = 1.0) -> FeatureSpec:
    """The spec of a tagger bundle: MSD_musicnn's input (16 kHz, 512-point frames every 256 samples, 96 Slaney mel
    bands), 188 frames (3 s of centred frames in musicnn's own patches) per window."""
    return FeatureSpec(labels=labels, front_end="musicnn", sample_rate=16000, window_s=(187 * 256 + 512) / 16000,
                       hop_s=hop_s, n_mfcc=96, n_fft=512, win_length=512, hop_length=256, n_mels=96, preemph=0.0,
                       ceplifter=0, append_energy=False)
