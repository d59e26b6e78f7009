"""The musicnn teacher in the trainer: fetched once, rebuilt without legacy Keras, equal to the reference,
its embeddings cached. TensorFlow runs in a subprocess: it must never enter the test process, which loads
TFLite runtimes elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer.data.dataset import default_cache_dir
from trainer.teacher.wheel import TeacherUnavailable, checkpoint_dir

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "teacher" / "musicnn_msd_reference.npz"
GTZAN = SHARED / "gtzan"


def _python(code: str, timeout: float = 400) -> dict[str, object]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_a_missing_teacher_is_one_clear_error_naming_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(TeacherUnavailable) as err:
        checkpoint_dir(tmp_path, fetch=False)
    assert "pip download --no-deps musicnn==0.1.0" in str(err.value)
    assert err.value.exit_code == 69


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"teacher reference not found at {REFERENCE}")
def test_the_rebuilt_teacher_reproduces_musicnn_outputs_without_legacy_keras() -> None:
    got = _python(f"""
        import json, sys
        from pathlib import Path
        import numpy as np
        from trainer.teacher.musicnn import CONSTANT_REACH, Musicnn, live_filters, read_checkpoint
        from trainer.teacher.wheel import checkpoint_dir
        variables = read_checkpoint(checkpoint_dir(Path({str(default_cache_dir())!r})))
        net = Musicnn(variables)
        # The filters the export leaves out (constant channels) sit in a wide gap: a 1000x other threshold either
        # side picks the same ones.
        live = [live_filters(variables, i).tolist() for i in range(5)]
        gap = all(live_filters(variables, i, CONSTANT_REACH * f).tolist() == live[i]
                  for i in range(5) for f in (1e-3, 1e3))
        ref = np.load({str(REFERENCE)!r})
        worst = {{}}
        for k in range(len(ref["clips"])):
            out = net(ref[f"input_{{k}}"])
            for name in ("tags", "mean_pool", "max_pool", "penultimate"):
                d = float(np.abs(getattr(out, name) - ref[f"{{name}}_{{k}}"]).max())
                worst[name] = max(worst.get(name, 0.0), d)
        legacy = "tf_keras" in sys.modules or __import__("os").environ.get("TF_USE_LEGACY_KERAS")
        # The exported layout (taps as channels, for XNNPACK's memory) computes the same sums on a 188-frame patch.
        import tensorflow as tf
        x = tf.constant(ref["input_0"][:2])
        lite = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                   for a, b in zip(net.forward(x), net.forward_lite(x), strict=True))
        print(json.dumps({{"worst": worst, "params": net.n_params, "legacy": bool(legacy), "lite": lite,
                          "live": [len(x) for x in live], "gap": gap}}))
    """)
    print(f"max |difference| from the reference: {got['worst']}; forward_lite vs forward {got['lite']:.1e}; "
          f"live front-end filters {got['live']}")
    assert got["lite"] < 1e-4  # type: ignore[operator]
    assert got["gap"]
    assert sum(got["live"]) < 100  # type: ignore[arg-type]  # of 561: the export computes a fraction of the front end
    assert got["params"] == 792_079
    assert not got["legacy"]
    assert all(v <= 1e-3 for v in got["worst"].values())  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.skipif(not (GTZAN / "manifest.csv").is_file(), reason=f"GTZAN subset not found at {GTZAN}")
def test_embeddings_are_computed_once_in_parallel_then_read_from_the_cache(tmp_path: Path) -> None:
    # The checkpoint comes from the usual cache (fetched there once); the embeddings go to a fresh one.
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "MSD_musicnn").symlink_to(checkpoint_dir(default_cache_dir()))
    got = _python(f"""
        import csv, json, time
        from pathlib import Path
        import numpy as np
        from trainer.teacher.embed import embed_clips
        if __name__ == "__main__":
            rows = list(csv.DictReader(open({str(GTZAN / "manifest.csv")!r})))[:4]
            items = [(Path({str(GTZAN)!r}) / r["path"], r["sha256"]) for r in rows]
            t0 = time.perf_counter()
            first = embed_clips(items, Path({str(tmp_path)!r}), workers=2, progress=False)
            t1 = time.perf_counter()
            again = embed_clips(items, Path({str(tmp_path)!r}), workers=2, progress=False)
            t2 = time.perf_counter()
            same = all(np.array_equal(first.by_sha[s].embedding, again.by_sha[s].embedding) for s in first.by_sha)
            shapes = [list(e.embedding.shape) for e in first.by_sha.values()]
            print(json.dumps({{"first": [first.computed, first.cached], "again": [again.computed, again.cached],
                              "same": same, "shapes": shapes, "t_first": t1 - t0, "t_again": t2 - t1}}))
    """)
    print(f"4 clips: first {got['t_first']:.1f} s, second {got['t_again']:.2f} s (cache)")
    assert got["first"] == [4, 0] and got["again"] == [0, 4] and got["same"]
    assert all(s[0] == 9 and s[1] == 1706 for s in got["shapes"])  # type: ignore[union-attr, index]
