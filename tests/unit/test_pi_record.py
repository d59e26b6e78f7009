"""bench/PI.md records what the arm64 check ran, never which mirror hosts its packages came from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "pi" / "check.py"


def test_recorded_logs_drop_package_download_lines_and_say_how_many() -> None:
    spec = importlib.util.spec_from_file_location("pi_check", CHECK)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    log = "\n".join(["== installing", "Get:1 http://mirror.example/debian bookworm InRelease [151 kB]",
                     "Downloading https://files.example/x.whl (1 MB)", "apt: done", ""])
    out = mod.recorded_log(log)
    assert "http" not in out
    assert out.splitlines() == ["== installing", "apt: done", "(2 package-download lines left out)"]
    assert (Path(CHECK).parents[2] / "bench" / "PI.md").read_text().count("http://") == 0
