"""Where the classifier completes windows, so a source can hand out a hop's audio in one piece."""

from __future__ import annotations

from dataclasses import dataclass

from edge.spec import FeatureSpec


@dataclass(frozen=True)
class WindowGrid:
    """The sample counts (since the stream began) at which the classifier completes a window.

    ``edge.decide.classifier.Classifier`` decides once its MFCC stream holds ``frames_per_window``
    complete frames, then every ``hop_frames`` frames more: window k ends at sample
    ``window_span_samples + k * hop_frames * hop_length``. A source hands out audio up to the next
    window end in one piece, so the loop wakes and computes once per hop instead of once per
    chunk (each wake-up costs more than the samples it carries), and the audio that completes a
    window is handed out as soon as it is there (tests/unit/test_daemon_grid.py checks the
    grid against the real Classifier).
    """

    first: int  # samples in the first window
    step: int  # samples per hop

    @classmethod
    def for_spec(cls, spec: FeatureSpec, hop_frames: int) -> WindowGrid:
        return cls(spec.window_span_samples, hop_frames * spec.hop_length)

    def next_end(self, samples: int) -> int:
        """The first window end after ``samples`` samples."""
        if samples < self.first:
            return self.first
        return self.first + ((samples - self.first) // self.step + 1) * self.step
