"""One hop's decision: gate result and window probabilities in, the published state out. Pure, no I/O.

The same object runs in the daemon, in ``genre-predict --published``, in the trainer's playlist
evaluation and in the bench, so what is measured offline is what the house hears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.decide.hmm import StickyFilter
from edge.decide.params import DecisionParams
from edge.decide.smoothing import Hysteresis, LogProbSmoother
from edge.decide.states import NOT_MUSIC, SILENCE, UNCERTAIN, is_reject

AnyFloat = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class Decision:
    """What one hop publishes. ``confidence`` is the probability of ``state`` itself (see :class:`Decider`)."""

    state: str  # a genre, or uncertain / not_music / silence: what the genre topic carries
    changed: bool  # state changed with this hop
    confidence: float
    candidate: str  # this hop's state before hysteresis
    top3: list[tuple[str, float]]  # the rule's belief over the model's classes (reject shown as not_music)


class Decider:
    """The decision rule for a model with ``labels``: level gate, evidence, confidence gate, hysteresis.

    A new class is announced once its probability reaches ``min_confidence`` (else ``uncertain``), and
    (with ``hold``) stays announced for as long as it remains the most probable class.

    ``confidence`` is the rule's probability of what is published: of the genre (or of not-music), of
    "some genre" for ``uncertain`` (music, but no genre is sure enough), and 1.0 for ``silence`` (the
    level gate is a measurement, not a guess).
    """

    def __init__(self, labels: tuple[str, ...], params: DecisionParams) -> None:
        self.params = params
        self.names = tuple(NOT_MUSIC if is_reject(label) else label for label in labels)
        self._genre_mask = np.array([not is_reject(label) for label in labels])
        rejects = [i for i, label in enumerate(labels) if is_reject(label)]
        self._reject = rejects[0] if rejects else None
        self._filter = StickyFilter(len(labels), params.switch_per_hop, params.temperature, reject_index=self._reject,
                                    reject_switch=params.reject_switch_per_hop if rejects else 0.0)
        self._smoother = LogProbSmoother(len(labels), params.smoothing_windows)
        self.hysteresis = Hysteresis(params.hysteresis_windows)
        self.belief: npt.NDArray[np.float64] | None = None

    @property
    def published(self) -> str | None:
        return self.hysteresis.published

    def reset(self) -> None:
        """Forget the evidence (after silence or a capture gap); the published state is kept."""
        self._filter.reset()
        self._smoother.reset()
        self.belief = None

    def silent(self) -> Decision:
        """A window under the level gate: no model run, and the next music starts afresh."""
        self.reset()
        state, changed = self.hysteresis.update(SILENCE)
        return Decision(state, changed, self._confidence(state), SILENCE, [])

    def update(self, probs: AnyFloat) -> Decision:
        """Fold in one window's class probabilities (the model's output order)."""
        reset_at, r = self.params.reject_reset, self._reject
        if (r is not None and reset_at < 1.0 and probs[r] >= reset_at and self.belief is not None
                and int(np.argmax(self.belief)) != r):
            # A window this sure of not-music ends a song's evidence, as silence does: talk after a song must
            # not have to outvote the whole song first. Only while music leads, so talk's evidence can build.
            self._filter.reset()
            self._smoother.reset()
        if self.params.rule == "hmm":
            belief = self._filter.update(probs)
        else:
            belief = self._smoother.push(probs).astype(np.float64)
        self.belief = belief
        best = int(np.argmax(belief))
        name = self.names[best]
        # The published state is kept while it is still the most probable class, however sure: a dip
        # to "uncertain" and back inside one song would be two changes for the house to react to.
        held = self.params.hold and name == self.hysteresis.published
        candidate = name if held or belief[best] >= self.params.min_confidence else UNCERTAIN
        state, changed = self.hysteresis.update(candidate)
        order = np.argsort(belief)[::-1][:3]
        top3 = [(self.names[i], float(belief[i])) for i in order]
        return Decision(state, changed, self._confidence(state), candidate, top3)

    def _confidence(self, state: str) -> float:
        if state == SILENCE:
            return 1.0
        if self.belief is None:
            return 0.0
        if state == UNCERTAIN:
            return float(self.belief[self._genre_mask].sum())
        return float(self.belief[self.names.index(state)])
