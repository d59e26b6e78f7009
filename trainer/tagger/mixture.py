"""The gated head as it is exported: a clean expert and a room expert mixed per window by a gate (all linear on the
tagger's embedding). Fitted in :mod:`trainer.tagger.heads`; computed in numpy here and in the bundle's graph by
:mod:`trainer.tagger.export`, which must agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trainer.teacher.head import LinearHead

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class GatedHead:
    """``g clean + (1 - g) room`` with ``g`` the gate's probability of its second class (a clean window)."""

    clean: LinearHead
    room: LinearHead
    gate: LinearHead

    def clean_weight(self, embedding: FloatArray) -> FloatArray:
        """(n, 1): the gate's probability that each window is clean."""
        out: FloatArray = self.gate.predict(embedding)[:, 1:2]
        return out

    def predict(self, embedding: FloatArray) -> FloatArray:
        g = self.clean_weight(embedding).astype(np.float64)
        out: FloatArray = (g * self.clean.predict(embedding) + (1.0 - g) * self.room.predict(embedding)).astype(
            np.float32)
        return out


Head = LinearHead | GatedHead


def linear_parts(head: Head) -> dict[str, LinearHead]:
    """The linear heads a head is made of, by the names the exported graph gives them."""
    if isinstance(head, GatedHead):
        return {"clean": head.clean, "room": head.room, "gate": head.gate}
    return {"head": head}


def head_size(head: Head) -> int:
    """Weights and biases of a head (the graph's parameters beside the tagger's)."""
    return sum(int(h.weight.size + h.bias.size) for h in linear_parts(head).values())


__all__ = ["GatedHead", "Head", "head_size", "linear_parts"]
