"""The ``model`` section of a bundle's model.json, the same for every model family."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

CLIP_RULE = "mean of window log-probabilities (edge.scoring.mean_log_probs)"


def bundle_meta(model_bytes: bytes, *, recipe: str, architecture: str, params: int, quantization: str, seed: int,
                train_clips: int, counts: Mapping[str, int], test_clips: int, command: str,
                decision: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Metadata of the model written beside it; ``version`` is the build minute and the model's hash."""
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M") + "-" + hashlib.sha256(model_bytes).hexdigest()[:8]
    return {
        "version": version,
        "recipe": recipe,
        "architecture": architecture,
        "params": params,
        "quantization": quantization,
        **extra,
        "seed": seed,
        "trained_on": f"{train_clips} clips ({', '.join(f'{k}={v}' for k, v in counts.items())} in all)",
        "test_clips": test_clips,
        "clip_rule": CLIP_RULE,
        "command": command,
        "decision": dict(decision),
    }
