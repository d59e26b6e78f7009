"""The names of what the ``genre`` topic can carry besides a genre, defined once.

None of them is a state Home Assistant reserves (``unknown``, ``unavailable``): a genre sensor that
says ``unknown`` cannot be told apart from "Home Assistant has no value".
"""

from __future__ import annotations

SILENCE = "silence"  # too quiet to classify (the level gate; the model is not run)
UNCERTAIN = "uncertain"  # music, but no genre is probable enough to announce
NOT_MUSIC = "not_music"  # speech, TV talk, household noise: the model's reject class
# Not a published genre: the audio source is gone. It appears only as the state JSON's ``status``, and
# Home Assistant shows the entities as unavailable through the availability template.
UNAVAILABLE = "unavailable"
MUSIC = "music"  # state JSON ``status`` when a genre is published

# What the reject class is called inside a model bundle's labels. Older bundles call it "unknown".
REJECT_LABEL = "not_music"
REJECT_LABELS = (REJECT_LABEL, "unknown")
PUBLISHED_NON_GENRES = (UNCERTAIN, NOT_MUSIC, SILENCE)


def is_reject(label: str) -> bool:
    """True for a model label that means "not music"."""
    return label in REJECT_LABELS


def genre_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """A model's labels without its reject class: the genres it can announce."""
    return tuple(label for label in labels if not is_reject(label))


def published_options(labels: tuple[str, ...]) -> list[str]:
    """Every value the ``genre`` topic can carry for a model with these labels."""
    return [*genre_labels(labels), *PUBLISHED_NON_GENRES]
