"""The decision rule's few constants, one frozen record that travels in ``model.json``.

A model and the rule tuned for it belong together: ``genre-train train`` tunes these on playlists of
training clips and writes them into the bundle's ``decision`` section; the daemon's TOML may still
override any of them. Ranges are checked here, once, for every caller.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

RULES = ("hmm", "mean")


@dataclass(frozen=True)
class DecisionParams:
    """``hmm``: a sticky forward filter over the model's classes; ``mean``: N-window mean + hysteresis.

    dBFS relative to a full-scale (±1.0) square wave; ``*_per_hop`` is a probability per classified hop.
    """

    rule: str = "hmm"
    silence_dbfs: float = -50.0  # window RMS below this -> "silence", the model is not run
    min_confidence: float = 0.5  # a new state's probability below this -> "uncertain"
    switch_per_hop: float = 0.01  # hmm: prior probability of leaving the current class at each hop
    temperature: float = 2.0  # hmm: window likelihoods are probs ** (1 / T) (overlapping windows agree)
    smoothing_windows: int = 5  # mean: N, the mean of the last N windows' log-probabilities
    hysteresis_windows: int = 2  # a new state must lead K consecutive hops before it is published
    hold: bool = True  # keep the published state while it is the most probable class, however sure
    # hmm, talk after a song: a song can end in talk at any hop, but rarely in another genre mid-song. This
    # extra per-hop chance of music -> not_music caps how far a long song's genre can lead the reject class, so
    # talk that follows a song is not published as the song's genre for its first ten seconds. 0 = symmetric.
    reject_switch_per_hop: float = 0.0
    # Both rules: while music leads, a window whose not-music probability reaches this resets the evidence, as
    # silence does (1.0 = never: a softmax reaches 1.0 only by rounding).
    reject_reset: float = 1.0

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """What is out of range, as ``key: why``, or None."""
        checks: tuple[tuple[str, bool, str], ...] = (
            ("rule", self.rule in RULES, f"must be one of {', '.join(RULES)}, got {self.rule!r}"),
            ("silence_dbfs", -120 <= self.silence_dbfs <= 0, f"must be in -120..0 dBFS, got {self.silence_dbfs}"),
            ("min_confidence", 0 <= self.min_confidence <= 1, f"must be in 0..1, got {self.min_confidence}"),
            ("switch_per_hop", 0 < self.switch_per_hop < 0.5, f"must be in (0, 0.5), got {self.switch_per_hop}"),
            ("reject_switch_per_hop", 0 <= self.reject_switch_per_hop < 0.5,
             f"must be in [0, 0.5), got {self.reject_switch_per_hop}"),
            ("reject_reset", 0.5 <= self.reject_reset <= 1, f"must be in 0.5..1, got {self.reject_reset}"),
            ("temperature", 0.1 <= self.temperature <= 20 and math.isfinite(self.temperature),
             f"must be in 0.1..20, got {self.temperature}"),
            ("smoothing_windows", 1 <= self.smoothing_windows <= 100,
             f"must be in 1..100, got {self.smoothing_windows}"),
            ("hysteresis_windows", 1 <= self.hysteresis_windows <= 100,
             f"must be in 1..100, got {self.hysteresis_windows}"),
        )
        for key, ok, why in checks:
            if not ok:
                return f"{key} {why}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], base: DecisionParams | None = None) -> DecisionParams:
        """``base`` (default: the defaults) with the keys of ``doc``; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(doc) - names)
        if extra:
            raise ValueError(f"unknown decision key(s): {', '.join(extra)}")
        return dataclasses.replace(base or cls(), **doc)

    def with_overrides(self, **overrides: Any) -> DecisionParams:
        """These params with every override that is not None."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


# The rule before this one (kept as the measured baseline): mean of 5 windows, 2-window hysteresis.
# It had no hold: "uncertain" whenever the top genre dipped under 0.35.
BASELINE = DecisionParams(rule="mean", min_confidence=0.35, smoothing_windows=5, hysteresis_windows=2, hold=False)
