"""Benchmark attention: the Triton FlashAttention kernel against PyTorch, or, without a
GPU, the naive and tiled torch implementations against PyTorch on the CPU.

    python bench/attention.py                      # GPU table if CUDA is present, else CPU
    python bench/attention.py --cpu                # force the CPU table
    python bench/attention.py --json results.json  # also save the rows and the metadata

GPU table (the FlashAttention-2 paper's setting): for every sequence length N in
1k..16k the batch is ``B = 16384 // N`` (16k tokens) and ``H = 2048 // D`` heads, in float16
and bfloat16, head_dim 64 and 128, causal and not. Throughput counts the matmul FLOPs:
forward ``4 * B * H * N^2 * D`` (two matmuls of ``2 N^2 D`` each), halved when causal
because half the scores are masked, and the backward at 2.5x the forward (five matmuls
instead of two), so forward+backward is 3.5x. Each ratio is ours / SDPA measured in the
same run, against SDPA's default backend (``sdpa``; cuDNN on an H100/H200 with recent torch)
and against SDPA forced to its FlashAttention-2 backend (``fa2``, selected with
``torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)``), since the default backend
differs between GPUs and torch versions. The default grid (bfloat16; N in 1k, 4k, 16k;
head_dim 64 and 128; causal and not: 12 rows) is sized to finish in a few minutes on an
H100/H200, autotuning included; ``--full`` adds 2k, 8k and float16.

    python bench/attention.py --require-gpu --json bench/results/attention_gpu.json
                                                   # make test-gpu: fails without CUDA

CPU table: one head group ``[1, 4, N, 64]`` in float32; wall time (median of a few runs)
and the peak bytes of tensors allocated during the call (``PeakMemory``). The Triton
kernel is left out on the CPU: the interpreter runs it in NumPy one tile at a time and
measures nothing about the kernel.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib.attention import blocked_attention, flash_attention  # noqa: E402


def attention_flops(b: int, h: int, n: int, d: int, causal: bool, mode: str) -> float:
    """Matmul FLOPs of attention: ``4 B H N^2 D`` forward, /2 causal, backward 2.5x."""
    fwd = 4.0 * b * h * n * n * d / (2.0 if causal else 1.0)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd}[mode]


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    is_causal: bool = False) -> torch.Tensor:
    """``softmax(q k^T / sqrt(D)) v``, materializing the full ``[..., N, N]`` scores."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])              # [B, H, N, N]
    if is_causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(s, dim=-1) @ v


class PeakMemory(TorchDispatchMode):
    """Peak bytes of tensor storage that torch ops allocate while the mode is active.

    Every op's outputs pass through ``__torch_dispatch__``; a storage not seen before is
    counted when it appears and released when the last tensor using it is freed
    (``weakref.finalize``). Views of tensors that existed before the block (such as
    slices of the inputs) allocate nothing and are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # storage pointer -> [tensors, bytes]

    def _release(self, ptr: int) -> None:
        entry = self._refs[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat_in = torch.utils._pytree.tree_leaves((args, kwargs))
        old = {t.untyped_storage().data_ptr() for t in flat_in if isinstance(t, torch.Tensor)}
        for t in torch.utils._pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            ptr = t.untyped_storage().data_ptr()
            if ptr == 0 or (ptr in old and ptr not in self._refs):
                continue                       # empty, or a view of pre-existing memory
            if ptr not in self._refs:
                self._refs[ptr] = [0, t.untyped_storage().nbytes()]
                self.live += self._refs[ptr][1]
                self.peak = max(self.peak, self.live)
            self._refs[ptr][0] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated by torch ops while ``fn()`` runs (its result included)."""
    with PeakMemory() as mem:
        fn()
    return mem.peak


def cpu_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_rows(lengths=(256, 512, 1024, 2048), d: int = 64, heads: int = 4,
             block_size: int = 128) -> list[dict]:
    """Time and peak memory of naive, blocked and SDPA attention on ``[1, heads, N, d]``."""
    rows = []
    for n in lengths:
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(1, heads, n, d, generator=g) for _ in range(3))
        impls = {"naive": lambda: naive_attention(q, k, v),
                 "blocked": lambda: blocked_attention(q, k, v, block_size=block_size),
                 "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
        for name, fn in impls.items():
            seconds = cpu_seconds(fn)
            rows.append({"impl": name, "N": n, "D": d, "H": heads, "ms": 1e3 * seconds,
                         "GFLOP/s": attention_flops(1, heads, n, d, False, "fwd") / seconds / 1e9,
                         "peak_MiB": peak_bytes(fn) / 2**20})
    return rows


def fa2_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  is_causal: bool) -> torch.Tensor:
    """SDPA restricted to its FlashAttention-2 backend (its backward is FA2's too)."""
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def gpu_rows(lengths=(1024, 4096, 16384), head_dims=(64, 128),
             dtypes=(torch.bfloat16,)) -> list[dict]:
    """TFLOP/s of flash_attention, SDPA (default) and SDPA-FA2, fwd and fwd+bwd, same run."""
    from triton.testing import do_bench

    rows = []
    for dtype in dtypes:
        for d in head_dims:
            for causal in (False, True):
                for n in lengths:
                    b, h = 16384 // n, 2048 // d
                    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=dtype,
                                           requires_grad=True) for _ in range(3))
                    do = torch.randn_like(q)
                    impls = {"flash": lambda: flash_attention(q, k, v, is_causal=causal),
                             "sdpa": lambda: F.scaled_dot_product_attention(
                                 q, k, v, is_causal=causal),
                             "fa2": lambda: fa2_attention(q, k, v, causal)}
                    row = {"dtype": str(dtype).removeprefix("torch."), "D": d,
                           "causal": causal, "N": n, "B": b, "H": h}
                    for name, fn in impls.items():
                        fwd_ms = do_bench(fn)
                        both_ms = do_bench(lambda: fn().backward(do), grad_to_none=[q, k, v])
                        row[f"{name}_fwd"] = attention_flops(b, h, n, d, causal, "fwd") \
                            / fwd_ms / 1e9
                        row[f"{name}_fwd+bwd"] = attention_flops(b, h, n, d, causal,
                                                                 "fwd+bwd") / both_ms / 1e9
                    for base in ("sdpa", "fa2"):
                        for mode in ("fwd", "fwd+bwd"):
                            row[f"ratio_{base}_{mode}"] = row[f"flash_{mode}"] \
                                / row[f"{base}_{mode}"]
                    rows.append(row)
                    del q, k, v, do
    return rows


def device_name(gpu: bool) -> str:
    """The name of the device the table was measured on, read at run time."""
    if gpu:
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return platform.processor() or platform.machine()


def metadata(gpu: bool) -> dict:
    return {"device": device_name(gpu),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch": torch.__version__, "triton": triton_version(),
            "kind": "gpu" if gpu else "cpu"}


def triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def markdown_table(rows: list[dict], digits: int = 2) -> str:
    """Rows of equal keys as a GitHub-flavoured markdown table."""
    keys = list(rows[0])
    cell = lambda x: f"{x:.{digits}f}" if isinstance(x, float) else str(x)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="CPU table even with a GPU")
    parser.add_argument("--json", type=Path, help="also write rows and metadata here")
    parser.add_argument("--full", action="store_true",
                        help="GPU: N up to 16k in powers of two, float16 and bfloat16")
    parser.add_argument("--require-gpu", action="store_true",
                        help="exit 2 with a message when CUDA is absent (make test-gpu)")
    args = parser.parse_args()
    if args.require_gpu and not torch.cuda.is_available():
        print("bench/attention.py --require-gpu: torch.cuda.is_available() is False "
              f"(torch {torch.__version__}); run it on a machine with a CUDA GPU",
              file=sys.stderr)
        return 2
    gpu = torch.cuda.is_available() and not args.cpu
    full = {"lengths": (1024, 2048, 4096, 8192, 16384),
            "dtypes": (torch.float16, torch.bfloat16)} if args.full else {}
    rows = gpu_rows(**full) if gpu else cpu_rows()
    meta = metadata(gpu)
    unit = "TFLOP/s" if gpu else "ms, GFLOP/s, peak MiB"
    print(f"attention benchmark on {meta['device']}, {meta['date']}, torch {meta['torch']} "
          f"({unit})\n")
    print(markdown_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
