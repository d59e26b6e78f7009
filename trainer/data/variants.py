"""A clip's audio as one of its copies ("variants"), the one place a variant name becomes audio.

``clean`` is the file as decoded; ``eval/<condition>`` an evaluation room (a severity of the training chain,
``trainer.augment.degrade``, or one of the evaluation-only unseen family, ``trainer.augment.unseen``);
``aug/<k>`` the k-th training room copy; ``noise/<k>`` the k-th wide-noise training copy
(``trainer.augment.noise_aug``); ``reverb/<k>`` the k-th feedback-delay-network room (``trainer.augment.fdn``).
Every copy is seeded from the clip's content hash and the variant, never from run order.
The MFCC feature cache and the tagger's embedding cache both call this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from trainer.augment.degrade import augment, degrade
from trainer.augment.fdn import reverb_copy
from trainer.augment.noise_aug import noise_copy
from trainer.augment.unseen import UNSEEN_CONDITIONS, unseen
from trainer.data.seeds import variant_seed

FloatArray = npt.NDArray[np.float32]


def variant_audio(audio: FloatArray, sample_rate: int, sha: str, variant: str, cache_dir: Path,
                  aug_seed: int = 0) -> FloatArray:
    """``audio`` (the clean clip) as ``variant``; ValueError for a name this module does not know."""
    kind, _, name = variant.partition("/")
    if variant == "clean":
        return audio
    if kind == "eval":
        return room(audio, sample_rate, name, variant_seed(sha, "eval", name), cache_dir)
    if kind == "aug" and name.isdigit():
        rng = np.random.default_rng(variant_seed(sha, "aug", aug_seed, int(name)))
        return np.asarray(augment(audio, sample_rate, rng, cache_dir=cache_dir), dtype=np.float32)
    if kind == "noise" and name.isdigit():
        rng = np.random.default_rng(variant_seed(sha, "noise", aug_seed, int(name)))
        return noise_copy(audio, sample_rate, rng)
    if kind == "reverb" and name.isdigit():
        rng = np.random.default_rng(variant_seed(sha, "reverb", aug_seed, int(name)))
        return reverb_copy(audio, sample_rate, rng)
    raise ValueError(f"unknown feature variant {variant!r}")


def room(audio: FloatArray, sample_rate: int, condition: str, seed: int, cache_dir: Path | None, *,
         purpose: str = "eval") -> FloatArray:
    """``audio`` through a room: a training-chain severity (``purpose`` picks its eval or train banks) or an
    unseen-family condition (evaluation only, whatever the purpose)."""
    if condition in UNSEEN_CONDITIONS:
        return unseen(audio, sample_rate, condition, seed)
    return np.asarray(degrade(audio, sample_rate, condition, seed, purpose=purpose, cache_dir=cache_dir),
                      dtype=np.float32)
