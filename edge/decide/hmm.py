"""A sticky forward filter over the model's classes: evidence builds up within a song, lets go at a change.

Each hop the state (a genre, or the reject class) stays with probability ``1 - switch`` and moves to
any other class with ``switch / (K - 1)``; the window's probabilities, tempered by ``1 / T``, are the
likelihoods. Why this rather than a mean of the last N windows: a mean forgets a song after N hops
however sure it was, so one run of odd windows flips it, and it needs N hops to believe a new song
even when every window agrees. The filter's memory is bounded by the switch prior instead — no state
can ever be more than ``log((1 - s) (K - 1) / s)`` nats ahead — so a real change wins within a few
hops, while a few odd windows inside a song only dent a long-built belief. Tempering accounts for
windows that overlap (3 s windows every 1 s) and are not independent evidence.

Music does not end the way it changes genre: any song can be followed by talk, at any hop. With
``reject_switch`` > 0 (and a reject class at ``reject_index``) every music class also moves to the reject
class with that probability per hop, which bounds a long song's lead over not-music separately (to about
``log((1 - r) / r)`` nats) from its lead over the other genres. Pure, no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
_FLOOR = 1e-6  # int8 outputs reach exact zeros; one zero must not veto a class for good


class StickyFilter:
    """Posterior over ``n_classes`` after each window; starts (and resets) uniform."""

    def __init__(self, n_classes: int, switch_per_hop: float, temperature: float, *,
                 reject_index: int | None = None, reject_switch: float = 0.0) -> None:
        if n_classes < 2:
            raise ValueError("need at least 2 classes")
        if not 0 < switch_per_hop < 1:
            raise ValueError("switch_per_hop must be in (0, 1)")
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        if not 0 <= reject_switch < 1:
            raise ValueError("reject_switch must be in [0, 1)")
        if reject_switch and reject_index is None:
            raise ValueError("reject_switch needs the reject class's index")
        self.n = n_classes
        self.stay = 1.0 - switch_per_hop
        self.move = switch_per_hop / (n_classes - 1)
        self.inv_t = 1.0 / temperature
        self.reject_index = reject_index
        self.reject_switch = reject_switch
        self.posterior: FloatArray = np.full(n_classes, 1.0 / n_classes)

    def reset(self) -> None:
        """Forget all evidence (silence, a capture gap): the next song starts from a flat prior."""
        self.posterior = np.full(self.n, 1.0 / self.n)

    def update(self, probs: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """Fold in one window's class probabilities; return the new posterior (sums to 1)."""
        post = self.posterior
        prior = post * self.stay + (1.0 - post) * self.move
        if self.reject_switch and self.reject_index is not None:
            r = self.reject_index
            into_reject = self.reject_switch * (1.0 - prior[r])  # from every music class, into not-music
            prior = prior * (1.0 - self.reject_switch)
            prior[r] += self.reject_switch * prior[r] + into_reject  # undo the scaling of not-music itself
        like = np.exp(self.inv_t * np.log(np.maximum(np.asarray(probs, dtype=np.float64), _FLOOR)))
        joint = prior * like
        total = float(joint.sum())
        self.posterior = joint / total if total > 0 and np.isfinite(total) else prior
        return self.posterior
