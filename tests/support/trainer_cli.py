"""``genre-train`` as a user runs it: a subprocess, TensorFlow's chatter off, no GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_trainer(args: list[str], cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
