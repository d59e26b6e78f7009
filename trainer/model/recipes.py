"""Training recipes: every knob that differs between the Velardo baseline and our default, in one place.

Pure configuration (no TensorFlow). ``quick`` variants shrink epochs for the smoke test only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edge.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """How to turn clips into a model.

    ``train_windows`` is "segments" (10 non-overlapping 3 s windows per clip, fixed) or "crops" (random
    window starts drawn afresh every epoch, ``crops_per_clip`` per clip). ``eval_hop_frames`` is the
    step in MFCC frames between evaluated windows (None = ``spec.hop_frames``, what the daemon uses).
    ``aug_copies`` degraded training copies per clip (trainer.augment.degrade.augment) join the clean audio;
    ``aug_fraction`` is the share of training windows drawn from them.
    """

    name: str
    model: str  # "velardo_cnn2d" | "tcn1d"
    cmn: bool = False
    cvn: bool = False
    low_hz: float = 0.0  # the mel filterbank's band (FeatureSpec.low_hz/high_hz)
    high_hz: float | None = None  # None = Nyquist
    mel_floor_db: float | None = None  # FeatureSpec.mel_floor_db
    normalize: bool = False  # learn per-coefficient mean/std on the training windows
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-4
    cosine_decay: bool = False
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    spec_augment: bool = False
    balanced_sampling: bool = False
    train_windows: str = "segments"
    crops_per_clip: int = 10
    eval_hop_frames: int | None = None
    aug_copies: int = 0
    aug_fraction: float = 0.0
    width: int = 64
    dropout: float = 0.3
    # Clean teacher, room student: a room-copy window's target blends its label with the model's own
    # (frozen) prediction on the clean window it was made from, weight ramped 0 -> this over the first
    # half of training. 0 = off. It asks the model to say in the room what it says on the clean clip.
    consistency: float = 0.0
    # Synthetic non-music clips (trainer.data.negatives) learned as the extra class "not_music", so speech and
    # household noise are rejected instead of announced as a genre. Shipped models only: ``compare``
    # measures the recipes on the genre task alone and sets this to 0.
    negatives: int = 0
    # Distillation (trainer.teacher): each training window's target is (1 - teacher_weight) x its label +
    # teacher_weight x the teacher head's distribution for the same 3 s of clean audio, softened by
    # teacher_temperature; training clips get cross-fitted targets (teacher_folds artist-grouped folds).
    teacher_weight: float = 0.0
    teacher_temperature: float = 2.0
    teacher_folds: int = 5
    # Which model family: "cnn" (the small MFCC networks above, trainer.model.train) or "tagger" (the frozen
    # pretrained musicnn + a linear genre head, trainer.tagger). A tagger recipe reads only: aug_copies,
    # noise_copies, reverb_copies, negatives, head_c, clean_expert_c, hop_s.
    family: str = "cnn"
    # Wide-noise training copies per clip (trainer.augment.noise_aug: any colour, 0-30 dB SNR), besides aug_copies.
    noise_copies: int = 0
    # Feedback-delay-network reverberation copies per clip (trainer.augment.fdn: a room algorithm unlike the
    # chain's image-source rooms), besides aug_copies and noise_copies.
    reverb_copies: int = 0
    head_c: float = 0.05  # the linear head's inverse L2 strength (1706 standardised inputs)
    # A clean expert beside that head (trainer.tagger.heads): a second linear head on clean windows alone, with this
    # inverse L2 strength, mixed with the first by a gate that hears how clean each window is. None = one head.
    clean_expert_c: float | None = None
    # The hop the bundle ships with (FeatureSpec.hop_s; the daemon's default, the rule is tuned at it). None =
    # the spec's default. The tagger costs ~6 ms a window on one x86 core, ~0.05-0.08 s on a Pi 4 (estimated).
    hop_s: float | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


VELARDO = Recipe(
    name="velardo",
    model="velardo_cnn2d",
    epochs=30,
    batch_size=32,
    learning_rate=1e-4,
    train_windows="segments",
    eval_hop_frames=126,
    notes="Velardo's seed: 10 x 3 s segments, raw MFCCs, 3 conv blocks + dense 64, Adam 1e-4, batch 32, 30 epochs",
)

DEFAULT = Recipe(
    name="default",
    model="tcn1d",
    cmn=True,
    normalize=True,
    epochs=40,
    batch_size=64,
    learning_rate=3e-3,
    cosine_decay=True,
    label_smoothing=0.1,
    mixup_alpha=0.2,
    spec_augment=True,
    balanced_sampling=True,
    train_windows="crops",
    crops_per_clip=12,
    aug_copies=4,
    aug_fraction=1.0,
    width=64,
    dropout=0.3,
    negatives=60,
    notes="1D temporal CNN (MFCCs as channels, separable convs, global average pooling), per-window CMN + "
    "train-set mean/std, random crops, class-balanced sampling, SpecAugment masks, mixup, label smoothing, "
    "room/noise augmentation from trainer.augment.degrade (train seeds), cosine LR; the shipped model adds a reject "
    "class 'not_music' learned from 60 synthetic speech/noise clips",
)

DISTILLED = dataclasses.replace(
    DEFAULT,
    name="distilled",
    teacher_weight=0.7,
    teacher_temperature=2.0,
    notes=DEFAULT.notes + "; distilled: every training window (a room copy) also learns the musicnn teacher's "
    "cross-fitted genre distribution for the same 3 s of clean audio (label 0.3 + teacher 0.7, temperature 2)",
)

TAGGER_LINEAR = Recipe(
    name="tagger_linear",
    model="musicnn_msd+linear",
    family="tagger",
    negatives=60,
    hop_s=1.5,
    notes="the pretrained MSD_musicnn tagger, frozen, and a class-balanced logistic-regression genre head on its "
    "window embedding (mean pool + max pool + penultimate, 1706 values), fitted on clean training windows only",
)

TAGGER_ROOM = dataclasses.replace(
    TAGGER_LINEAR,
    name="tagger_room",
    aug_copies=6,
    noise_copies=6,
    reverb_copies=2,
    head_c=0.01,
    notes="the tagger_linear recipe with its head fitted on clean windows + 6 room copies (the training room chain) "
    "+ 6 wide-noise copies (any colour from white to brown, 0-30 dB SNR, random EQ and band limits) + 2 feedback-"
    "delay-network rooms (RT60 0.3-0.9 s) per clip, and 5x stronger L2 (C 0.01), so it learns that noise and rooms "
    "are not genre",
)

TAGGER = dataclasses.replace(
    TAGGER_ROOM,
    name="tagger",
    model="musicnn_msd+gated_linear",
    clean_expert_c=TAGGER_LINEAR.head_c,
    notes="the tagger_room recipe's head as the room expert, the tagger_linear recipe's head (clean windows only) "
    "as the clean expert, mixed per window by a two-class gate (clean window vs training copy) on the same "
    "embedding: clean music is judged by the head that is best on it, rooms by the one that survives them",
)

RECIPES = {r.name: r for r in (VELARDO, DEFAULT, DISTILLED, TAGGER_LINEAR, TAGGER_ROOM, TAGGER)}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
    clean = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(recipe, **clean) if clean else recipe
