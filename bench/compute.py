"""Multiply-adds per window, read from a bundle's TFLite graph, and the Raspberry Pi per-window *estimates* built on
them.

A Pi cannot be timed here (qemu emulates an arm64 instruction by instruction: ~8 s a window, which says nothing
about a Cortex core), so the Pi figures are arithmetic: 2 x multiply-adds / sustained FLOP/s of one core. Every
assumption is a named constant below and is printed beside the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, Table

# Ops whose arithmetic dominates; everything else (adds, pools, softmax, dequantise) is O(elements), not
# O(elements x kernel), and is left out of the count on purpose.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")


@dataclass(frozen=True)
class GraphCount:
    macs: int
    by_op: dict[str, int]
    ops: int  # all ops in the graph
    error: str = ""


def _op_macs(name: str, ins: list[list[int] | None], out: list[int]) -> int:
    out_elems = int(np.prod(out))
    if name == "CONV_2D":  # kernel (out_ch, kh, kw, in_ch): every output sums kh x kw x in_ch products
        k = ins[1]
        return out_elems * int(np.prod(k[1:])) if k else 0
    if name == "DEPTHWISE_CONV_2D":  # kernel (1, kh, kw, ch): one channel per output
        k = ins[1]
        return out_elems * k[1] * k[2] if k else 0
    if name == "FULLY_CONNECTED":  # weights (units, in)
        k = ins[1]
        return out_elems * k[-1] if k else 0
    if name == "BATCH_MATMUL":  # (..., m, k) @ (..., k, n); adj_x is not used by our exporters
        a = ins[0]
        return out_elems * a[-1] if a else 0
    return 0


def graph_macs(model: Path) -> GraphCount:
    """Sum of output elements x kernel size over the MAC ops of ``model`` (the first lite runtime that loads it).

    The default XNNPACK delegate is switched off where the runtime allows it, so the op list is the graph as
    written, not the delegate's partitions; shapes are read after ``allocate_tensors`` (all static here).
    """
    from edge.runtime_choice import LITE_RUNTIMES, load_interpreter_class

    errors = []
    for runtime in LITE_RUNTIMES:
        try:
            cls, _ = load_interpreter_class(runtime)
            interp = _interpreter(cls, runtime, model)
            interp.allocate_tensors()
            shapes = {int(d["index"]): [int(x) for x in d["shape"]] for d in interp.get_tensor_details()}
            ops: list[dict[str, Any]] = interp._get_ops_details()  # private, but the only op list either runtime has
        except Exception as exc:  # any failure becomes the count's error, never a crash
            errors.append(f"{runtime}: {exc}"[:160])
            continue
        by_op: dict[str, int] = {}
        for op in ops:
            name = str(op["op_name"])
            if name not in MAC_OPS:
                continue
            ins = [shapes.get(int(i)) if int(i) >= 0 else None for i in op["inputs"]]
            out = shapes[int(op["outputs"][0])]
            by_op[name] = by_op.get(name, 0) + _op_macs(name, ins, out)
        return GraphCount(sum(by_op.values()), by_op, len(ops))
    return GraphCount(0, {}, 0, error="; ".join(errors) or "no lite runtime")


def _interpreter(cls: Any, runtime: str, model: Path) -> Any:
    module = __import__(f"{runtime}.interpreter", fromlist=["OpResolverType"])
    resolver = getattr(module, "OpResolverType", None)
    if resolver is not None:
        return cls(model_path=str(model), experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return cls(model_path=str(model))


@dataclass(frozen=True)
class Core:
    board: str
    core: str
    ghz: float
    flops_per_cycle: int  # fp32, one core, NEON FMA issue rate x 4 lanes x 2


# Peak fp32 FLOP/cycle per core from Arm's software optimisation guides: the Cortex-A72 issues one 128-bit FMLA
# per cycle (8 FLOP), the Cortex-A76 two (16 FLOP). Clocks: Pi 4 B 1.5 GHz (1.8 GHz on board rev 1.4 and the
# Pi 400), Pi 5 2.4 GHz.
CORES = (
    Core("Pi 4 B", "Cortex-A72", 1.5, 8),
    Core("Pi 4 B rev 1.4 / Pi 400", "Cortex-A72", 1.8, 8),
    Core("Pi 5", "Cortex-A76", 2.4, 16),
)
# What fraction of that peak XNNPACK's fp32 convolutions sustain on one core. An assumption, stated as a range:
# GEMM-shaped convolutions reach 60-80 % on big cores; the A72's small L2 (1 MB shared) and 3 MB of fp32 weights
# (the tagger's float16 weights are widened at load) argue for the lower end.
EFFICIENCY = (0.4, 0.7)
# XNNPACK runs fp32 arithmetic even for float16-stored weights (they are widened to fp32 once, at load).
ESTIMATE_NOTE = (
    "ESTIMATES, not measurements: time = 2 x multiply-adds / (GHz x fp32 FLOP/cycle x efficiency), one core, "
    "XNNPACK fp32, num_threads = 1; the frequency and FLOP/cycle are the cores' published figures, the "
    f"efficiency range {EFFICIENCY[0]:.0%}-{EFFICIENCY[1]:.0%} of peak is assumed. Features, smoothing and MQTT "
    "add a few ms per hop on top."
)


def pi_estimates(macs: int, hop_s: float, longer_hop_s: float = 3.0) -> Table:
    """One row per board x efficiency bound: ms per window and the share of one core at the shipped hop."""
    rows = []
    for core in CORES:
        peak = core.ghz * 1e9 * core.flops_per_cycle
        for eff in reversed(EFFICIENCY):  # best case first
            ms = 2 * macs / (peak * eff) * 1e3
            rows.append(
                Row(
                    f"{core.board} ({core.core} {core.ghz:g} GHz), {eff:.0%} of peak",
                    "ms/window (estimate)",
                    [ms],
                    note=(
                        f"{ms / 10 / hop_s:.1f} % of one core at hop {hop_s:g} s, "
                        f"{ms / 10 / longer_hop_s:.1f} % at hop {longer_hop_s:g} s"
                    ),
                    extra={"ghz": core.ghz, "flops_per_cycle": core.flops_per_cycle, "efficiency": eff},
                )
            )
    return Table(
        f"Raspberry Pi per-window time, ESTIMATED from {macs / 1e9:.2f} G multiply-adds", rows, note=ESTIMATE_NOTE
    )


def effective_gmacs(macs: int, ms: float) -> float:
    """A measured per-window time as sustained G multiply-adds/s (float or int8 alike; x2 for fp32 GFLOP/s)."""
    return macs / (ms * 1e-3) / 1e9 if ms > 0 and not math.isnan(ms) else math.nan
