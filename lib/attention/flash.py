"""FlashAttention in Triton: fused forward and backward kernels behind ``autograd``.

Four kernels, each a direct transcription of the tiled algorithm of ``blocked.py``:

* ``_fwd_kernel``: one program per ``BLOCK_M`` queries of one (batch, head); streams the
  keys and values through on-chip memory with the online softmax and writes the output
  and the natural-log log-sum-exp ``lse`` of every row (the only extra thing it saves).
* ``_delta_kernel``: ``delta_i = sum_d dO_id O_id``, which the softmax backward needs.
* ``_dkdv_kernel``: one program per ``BLOCK_N`` keys; streams the queries through,
  recomputes ``P = exp(S - lse)`` from the saved ``lse`` and accumulates ``dV = P^T dO``
  and ``dK = scale * dS^T Q`` with ``dS = P * (dO V^T - delta)``.
* ``_dq_kernel``: one program per ``BLOCK_M`` queries; streams the keys through and
  accumulates ``dQ = scale * dS K``.

Splitting the backward into a key-major and a query-major pass means that every program
owns the rows it writes, so no atomics are needed.

Two ways to run one kernel. ``triton.jit`` compiles the Python function for the GPU;
``triton.runtime.interpreter.InterpretedFunction`` runs the *same* Python function on
the CPU, tile by tile, with NumPy (this is what ``TRITON_INTERPRET=1`` selects globally at
decoration time). We build both from the one function (``kernel.fn`` is the undecorated
Python function) and pick by the device of the tensors, so CPU tensors go through the
interpreter and CUDA tensors through the compiled kernel, in the same process. One
wrinkle: ``triton.language`` itself was decorated without the interpreter, so helpers
such as ``tl.zeros`` and ``tl.max`` are compiled-only ``JITFunction`` objects. While an
interpreted launch runs, ``_interpreted_helpers`` makes a call to any ``JITFunction``
run that function's interpreted twin; the interpreter's own patches of ``tl`` and
``tl.core`` are undone when the launch returns (both modules are globals here, so the
interpreter saves and restores both).

Scores are kept in base 2 inside the kernels: ``exp(x) = exp2(x * log2(e))``, so the
scale is folded into ``qk_scale = scale * log2(e)`` and the hardware ``exp2`` is used.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import torch
import triton
import triton.language as tl
from triton.language import core as tl_core  # noqa: F401  (seen by the interpreter, see above)
from triton.runtime import interpreter
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from lib._checks import check_in_range, shape_of
from lib.attention.sdpa import _check_qkv

LOG2E = 1.4426950408889634  # log2(e): exp(x) == exp2(x * LOG2E)
HEAD_DIMS = (16, 32, 64, 128)


@triton.jit
def _visible(rows, cols, Lk, shift, IS_CAUSAL: tl.constexpr):
    """Bool [BM, BN]: key ``cols`` exists and (if causal) query ``rows`` may see it."""
    keep = cols[None, :] < Lk
    if IS_CAUSAL:
        keep = keep & (cols[None, :] <= rows[:, None] + shift)
    return keep


@triton.jit
def _fwd_step(acc, l_i, m_i, q, K, V, start_n, rows, qk_scale, Lk, shift,
              HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, IS_CAUSAL: tl.constexpr,
              MASK: tl.constexpr):
    # One key block of the online softmax for a [BM, D] block of queries.
    cols = start_n + tl.arange(0, BLOCK_N)                            # [BN] key index
    kv_ptrs = cols[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    k = tl.load(K + kv_ptrs, mask=cols[:, None] < Lk, other=0.0)      # [BN, D]
    v = tl.load(V + kv_ptrs, mask=cols[:, None] < Lk, other=0.0)      # [BN, D]
    s = tl.dot(q, tl.trans(k))                                        # [BM, BN] fp32
    if MASK:                      # only the diagonal and the tail blocks pay for this
        s = tl.where(_visible(rows, cols, Lk, shift, IS_CAUSAL), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)                  # [BM], log2 units
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)             # no visible key yet
    alpha = tl.math.exp2(m_i - m_safe)                                # rescale old sums
    p = tl.math.exp2(s * qk_scale - m_safe[:, None])                  # [BM, BN]
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return acc, l_i, m_new


@triton.jit
def _key_ranges(start_m, Lk, shift, IS_CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr):
    """Keys [0, full) need no mask for query rows [start_m, start_m + BLOCK_M); keys
    [full, hi) need one (the causal diagonal, the tail past Lk); keys >= hi are unseen."""
    full = Lk // BLOCK_N * BLOCK_N
    hi = Lk
    if IS_CAUSAL:                 # row i sees j <= i + shift: the first row sees the least
        full = tl.minimum(full, tl.maximum(start_m + shift + 1, 0) // BLOCK_N * BLOCK_N)
        hi = tl.minimum(Lk, start_m + BLOCK_M + shift)
    return full, hi


@triton.jit
def _fwd_kernel(Q, K, V, O, LSE, qk_scale, Lq, Lk,
                HEAD_DIM: tl.constexpr, IS_CAUSAL: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # Q, O [Z, Lq, D]; K, V [Z, Lk, D]; LSE [Z, Lq] float32; all contiguous.
    z = tl.program_id(1).to(tl.int64)
    start_m = tl.program_id(0) * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)                            # [BM] query index
    dims = tl.arange(0, HEAD_DIM)                                     # [D]
    Q += z * Lq * HEAD_DIM
    K += z * Lk * HEAD_DIM
    V += z * Lk * HEAD_DIM
    q = tl.load(Q + rows[:, None] * HEAD_DIM + dims[None, :],
                mask=rows[:, None] < Lq, other=0.0)                   # [BM, D]
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)             # running max (log2)
    l_i = tl.zeros([BLOCK_M], tl.float32)                           # running sum
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)                 # running output
    shift = Lk - Lq               # causal: query i sees keys j <= i + shift
    full, hi = _key_ranges(start_m, Lk, shift, IS_CAUSAL, BLOCK_M, BLOCK_N)
    for start_n in range(0, full, BLOCK_N):       # every row sees every key: no mask
        acc, l_i, m_i = _fwd_step(acc, l_i, m_i, q, K, V, start_n, rows, qk_scale, Lk,
                                  shift, HEAD_DIM, BLOCK_N, IS_CAUSAL, MASK=False)
    for start_n in range(full, hi, BLOCK_N):      # the diagonal and the ragged tail
        acc, l_i, m_i = _fwd_step(acc, l_i, m_i, q, K, V, start_n, rows, qk_scale, Lk,
                                  shift, HEAD_DIM, BLOCK_N, IS_CAUSAL, MASK=True)
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)      # a row that saw no key: O = 0, lse = -inf
    out = acc / l_safe[:, None]
    lse = (m_i + tl.math.log2(l_safe)) * 0.6931471805599453          # back to natural log
    tl.store(O + z * Lq * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :],
             out.to(O.dtype.element_ty), mask=rows[:, None] < Lq)
    tl.store(LSE + z * Lq + rows, lse, mask=rows < Lq)


@triton.jit
def _delta_kernel(O, DO, DELTA, Lq, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    # delta [Z, Lq] = rowsum(dO * O) in float32.
    z = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    ptrs = z * Lq * HEAD_DIM + rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    o = tl.load(O + ptrs, mask=rows[:, None] < Lq, other=0.0).to(tl.float32)
    do = tl.load(DO + ptrs, mask=rows[:, None] < Lq, other=0.0).to(tl.float32)
    tl.store(DELTA + z * Lq + rows, tl.sum(o * do, 1), mask=rows < Lq)


@triton.jit
def _load_lse2(LSE, rows, Lq):
    """The saved lse in log2 units; +inf for padded rows and rows that saw no key (whose
    lse is -inf), so that exp2(s - lse) = 0 and such rows contribute nothing."""
    lse = tl.load(LSE + rows, mask=rows < Lq, other=float("inf"))
    return tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)


@triton.jit
def _dkdv_step(dk, dv, k, v, Q, DO, LSE, DELTA, start_m, cols, qk_scale, Lq, Lk, shift,
               HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, MASK: tl.constexpr):
    # One query block's contribution to the dK, dV of a [BN, D] block of keys.
    rows = start_m + tl.arange(0, BLOCK_M)                            # [BM] query index
    q_ptrs = rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    q = tl.load(Q + q_ptrs, mask=rows[:, None] < Lq, other=0.0)       # [BM, D]
    do = tl.load(DO + q_ptrs, mask=rows[:, None] < Lq, other=0.0)     # [BM, D]
    lse2 = _load_lse2(LSE, rows, Lq)                                  # [BM]
    delta = tl.load(DELTA + rows, mask=rows < Lq, other=0.0)          # [BM]
    p_t = tl.math.exp2(tl.dot(k, tl.trans(q)) * qk_scale - lse2[None, :])  # P^T [BN, BM]
    if MASK:                      # causal diagonal: key j hidden from query i if j > i + shift
        p_t = tl.where(cols[:, None] <= rows[None, :] + shift, p_t, 0.0)
    dv += tl.dot(p_t.to(do.dtype), do)                                # P^T dO
    dp_t = tl.dot(v, tl.trans(do))                                    # (dO V^T)^T [BN, BM]
    ds_t = p_t * (dp_t - delta[None, :])                              # softmax backward
    dk += tl.dot(ds_t.to(q.dtype), q)                                 # dS^T Q
    return dk, dv


@triton.jit
def _dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, qk_scale, sm_scale, Lq, Lk,
                 HEAD_DIM: tl.constexpr, IS_CAUSAL: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # One program owns keys [start_n, start_n + BLOCK_N) and writes their dK, dV rows.
    # Padded keys (j >= Lk) load as zeros and are never stored, so they need no mask.
    z = tl.program_id(1).to(tl.int64)
    start_n = tl.program_id(0) * BLOCK_N
    cols = start_n + tl.arange(0, BLOCK_N)                            # [BN] key index
    Q += z * Lq * HEAD_DIM
    DO += z * Lq * HEAD_DIM
    LSE += z * Lq
    DELTA += z * Lq
    kv_ptrs = z * Lk * HEAD_DIM + cols[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    k = tl.load(K + kv_ptrs, mask=cols[:, None] < Lk, other=0.0)      # [BN, D]
    v = tl.load(V + kv_ptrs, mask=cols[:, None] < Lk, other=0.0)      # [BN, D]
    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    shift = Lk - Lq
    lo = 0                        # first query block that sees any of these keys
    full = 0                      # first query block whose every row sees all of them
    if IS_CAUSAL:
        lo = tl.maximum(start_n - shift, 0) // BLOCK_M * BLOCK_M
        full = tl.minimum(tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - shift, 0), BLOCK_M)
                          * BLOCK_M, tl.cdiv(Lq, BLOCK_M) * BLOCK_M)
    for start_m in range(lo, full, BLOCK_M):      # the causal diagonal: masked
        dk, dv = _dkdv_step(dk, dv, k, v, Q, DO, LSE, DELTA, start_m, cols, qk_scale,
                            Lq, Lk, shift, HEAD_DIM, BLOCK_M, MASK=True)
    for start_m in range(tl.maximum(lo, full), Lq, BLOCK_M):   # fully visible: no mask
        dk, dv = _dkdv_step(dk, dv, k, v, Q, DO, LSE, DELTA, start_m, cols, qk_scale,
                            Lq, Lk, shift, HEAD_DIM, BLOCK_M, MASK=False)
    tl.store(DK + kv_ptrs, (dk * sm_scale).to(DK.dtype.element_ty), mask=cols[:, None] < Lk)
    tl.store(DV + kv_ptrs, dv.to(DV.dtype.element_ty), mask=cols[:, None] < Lk)


@triton.jit
def _dq_step(dq, q, do, lse2, delta, K, V, start_n, rows, qk_scale, Lk, shift,
             HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, IS_CAUSAL: tl.constexpr,
             MASK: tl.constexpr):
    # One key block's contribution to the dQ of a [BM, D] block of queries.
    cols = start_n + tl.arange(0, BLOCK_N)
    kv_ptrs = cols[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    k = tl.load(K + kv_ptrs, mask=cols[:, None] < Lk, other=0.0)      # [BN, D]
    v = tl.load(V + kv_ptrs, mask=cols[:, None] < Lk, other=0.0)      # [BN, D]
    p = tl.math.exp2(tl.dot(q, tl.trans(k)) * qk_scale - lse2[:, None])  # [BM, BN]
    if MASK:                      # a padded key has s = 0, and exp2(0 - lse) may overflow
        p = tl.where(_visible(rows, cols, Lk, shift, IS_CAUSAL), p, 0.0)
    dp = tl.dot(do, tl.trans(v))                                      # [BM, BN]
    ds = p * (dp - delta[:, None])
    dq += tl.dot(ds.to(k.dtype), k)                                   # dS K
    return dq


@triton.jit
def _dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, qk_scale, sm_scale, Lq, Lk,
               HEAD_DIM: tl.constexpr, IS_CAUSAL: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # One program owns queries [start_m, start_m + BLOCK_M) and writes their dQ rows.
    z = tl.program_id(1).to(tl.int64)
    start_m = tl.program_id(0) * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)                            # [BM] query index
    K += z * Lk * HEAD_DIM
    V += z * Lk * HEAD_DIM
    q_ptrs = z * Lq * HEAD_DIM + rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    q = tl.load(Q + q_ptrs, mask=rows[:, None] < Lq, other=0.0)       # [BM, D]
    do = tl.load(DO + q_ptrs, mask=rows[:, None] < Lq, other=0.0)     # [BM, D]
    lse2 = _load_lse2(LSE + z * Lq, rows, Lq)                         # [BM]
    delta = tl.load(DELTA + z * Lq + rows, mask=rows < Lq, other=0.0)  # [BM]
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    shift = Lk - Lq
    full, hi = _key_ranges(start_m, Lk, shift, IS_CAUSAL, BLOCK_M, BLOCK_N)
    for start_n in range(0, full, BLOCK_N):
        dq = _dq_step(dq, q, do, lse2, delta, K, V, start_n, rows, qk_scale, Lk, shift,
                      HEAD_DIM, BLOCK_N, IS_CAUSAL, MASK=False)
    for start_n in range(full, hi, BLOCK_N):
        dq = _dq_step(dq, q, do, lse2, delta, K, V, start_n, rows, qk_scale, Lk, shift,
                      HEAD_DIM, BLOCK_N, IS_CAUSAL, MASK=True)
    tl.store(DQ + q_ptrs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=rows[:, None] < Lq)


def _configs(pairs: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bm, bn, w, s in pairs]


# Candidate tiles for the GPU (BLOCK_M, BLOCK_N, warps, stages); the autotuner times them
# once per (lengths, head_dim, causal) and keeps the fastest. Configs that do not fit in
# shared memory are skipped by the autotuner.
_GPU_CONFIGS = {
    "fwd": _configs([(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 32, 4, 4),
                     (64, 64, 4, 3), (128, 64, 8, 4), (128, 128, 8, 2), (64, 128, 4, 3)]),
    "dkdv": _configs([(32, 128, 4, 3), (64, 128, 8, 3), (32, 64, 4, 3), (64, 64, 4, 3),
                      (16, 128, 4, 3), (64, 128, 8, 2)]),
    "dq": _configs([(128, 32, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (64, 32, 4, 3),
                    (128, 32, 8, 2), (128, 64, 8, 2)]),
}
# The interpreter runs every program one after another in NumPy: small tiles keep the
# CPU tests fast and make short sequences span several blocks (so tails get exercised).
_CPU_CONFIG = [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16})]
_KEY = ["Lq", "Lk", "HEAD_DIM", "IS_CAUSAL"]


def _twins(kernel, gpu_configs: list[triton.Config]) -> dict:
    """The compiled kernel for CUDA tensors and its interpreted twin for CPU tensors."""
    return {"cuda": triton.autotune(configs=gpu_configs, key=_KEY)(kernel),
            "cpu": triton.autotune(configs=_CPU_CONFIG, key=_KEY)(
                InterpretedFunction(kernel.fn))}


@functools.cache
def _interpreted(fn):
    """``fn`` rewritten for the interpreter (the rewrite that ``InterpretedFunction`` does)."""
    return InterpretedFunction(fn).rewrite()


@contextlib.contextmanager
def _interpreted_helpers() -> Iterator[None]:
    """Within the block, calling a compiled-only ``@triton.jit`` helper interprets it.

    The launch has already patched ``tl``, ``tl.core`` and ``tl.math`` for the
    interpreter, so the helper's rewritten Python function can be called directly.

    Also, for triton 3.6: its interpreter converts a scalar tensor to a Python int with
    ``int(data)``, which fails on the 1-element arrays that scalar arithmetic makes, so
    ``for start_n in range(0, full, BLOCK_N)`` raised "only 0-dimensional arrays can be
    converted". The patch below squeezes first, as triton 3.9's interpreter does itself.
    """
    compiled_call = JITFunction.__call__
    patch_tensor = interpreter._patch_lang_tensor

    def patch_tensor_with_scalar_index(tensor, scope) -> None:
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    JITFunction.__call__ = lambda self, *args, **kwargs: _interpreted(self.fn)(*args, **kwargs)
    interpreter._patch_lang_tensor = patch_tensor_with_scalar_index
    try:
        yield
    finally:
        JITFunction.__call__ = compiled_call
        interpreter._patch_lang_tensor = patch_tensor


def _launch(kernels: dict, device: torch.device, grid, *args, **kwargs) -> None:
    """Run ``kernels[device.type]`` (compiled on CUDA, interpreted on the CPU)."""
    if device.type == "cuda":
        with torch.cuda.device(device):  # launch on the tensors' GPU, not the current one
            kernels["cuda"][grid](*args, **kwargs)
        return
    with _interpreted_helpers():
        kernels["cpu"][grid](*args, **kwargs)


_FWD = _twins(_fwd_kernel, _GPU_CONFIGS["fwd"])
_DKDV = _twins(_dkdv_kernel, _GPU_CONFIGS["dkdv"])
_DQ = _twins(_dq_kernel, _GPU_CONFIGS["dq"])
_DELTA = {"cuda": _delta_kernel, "cpu": InterpretedFunction(_delta_kernel.fn)}


def _flash_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool,
                   scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``q [Z, Lq, D]``, ``k, v [Z, Lk, D]`` contiguous; returns ``o [Z, Lq, D]``, ``lse [Z, Lq]``."""
    z, lq, d = q.shape
    lk = k.shape[1]
    o = torch.empty_like(q)
    lse = torch.empty((z, lq), device=q.device, dtype=torch.float32)
    grid = lambda meta: (triton.cdiv(lq, meta["BLOCK_M"]), z)  # noqa: E731
    _launch(_FWD, q.device, grid, q, k, v, o, lse, scale * LOG2E, lq, lk,
            HEAD_DIM=d, IS_CAUSAL=is_causal)
    return o, lse


def _flash_backward(q, k, v, o, lse, do, is_causal: bool, scale: float):
    """Gradients ``(dq, dk, dv)`` from the saved ``o`` and ``lse``; shapes as in forward."""
    z, lq, d = q.shape
    lk = k.shape[1]
    delta = torch.empty_like(lse)                                     # [Z, Lq] float32
    _launch(_DELTA, q.device, (triton.cdiv(lq, 64), z), o, do, delta, lq,
            HEAD_DIM=d, BLOCK_M=64)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    args = (q, k, v, do, lse, delta)
    _launch(_DKDV, q.device, lambda meta: (triton.cdiv(lk, meta["BLOCK_N"]), z),
            *args, dk, dv, scale * LOG2E, scale, lq, lk, HEAD_DIM=d, IS_CAUSAL=is_causal)
    _launch(_DQ, q.device, lambda meta: (triton.cdiv(lq, meta["BLOCK_M"]), z),
            *args, dq, scale * LOG2E, scale, lq, lk, HEAD_DIM=d, IS_CAUSAL=is_causal)
    return dq, dk, dv


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd glue: the forward saves ``q, k, v, o, lse``; the backward recomputes ``P``."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool,
                scale: float) -> torch.Tensor:
        o, lse = _flash_forward(q, k, v, is_causal, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.is_causal, ctx.scale = is_causal, scale
        return o

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _flash_backward(q, k, v, o, lse, do.contiguous(), ctx.is_causal,
                                     ctx.scale)
        return dq, dk, dv, None, None


def _check_flash_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    _check_qkv(q, k, v)
    if v.shape[-1] != q.shape[-1]:
        raise ValueError(f"v must have the head_dim of q, got q {shape_of(q)} and "
                         f"v {shape_of(v)}")
    if q.shape[-1] not in HEAD_DIMS:
        raise ValueError(f"q's head_dim must be one of {HEAD_DIMS}, got q {shape_of(q)}")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device}, "
                         f"{v.device}")
    allowed = (torch.float16, torch.float32) + ((torch.bfloat16,) if q.is_cuda else ())
    if q.dtype not in allowed:
        raise ValueError(f"q's dtype must be one of {allowed} on {q.device.type} "
                         f"(the interpreter's bfloat16 tl.dot is wrong), got {q.dtype}")
    if q.device.type not in ("cpu", "cuda"):
        raise ValueError(f"q must be on a cpu or cuda device, got {q.device}")


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """Fused attention ``softmax(q k^T * scale + mask) v`` by the Triton kernels above.

    Args:
        q: ``[..., Lq, D]``; k, v: ``[..., Lk, D]``; leading dimensions broadcast.
            ``D`` in {16, 32, 64, 128}; float16 or float32 (and bfloat16 on CUDA); any
            lengths. CUDA tensors run the compiled kernel, CPU tensors the interpreter.
        is_causal: query ``i`` sees key ``j`` iff ``j <= i + Lk - Lq`` (bottom-right
            alignment). A query that sees no key outputs zeros and gets zero gradients.
        scale: multiplies ``q k^T``; defaults to ``1 / sqrt(D)``.

    Returns:
        ``[..., Lq, D]`` in the input dtype, differentiable with respect to q, k and v.
        Accumulation is in float32; on a GPU, float32 inputs go through ``tl.dot`` in TF32
        (10-bit mantissa), so expect errors near 1e-3, not 1e-6.
    """
    _check_flash_inputs(q, k, v)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    check_in_range("scale", scale, 0.0, math.inf, low_open=True)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    (lq, d), lk = q.shape[-2:], k.shape[-2]

    def flat(x: torch.Tensor, length: int) -> torch.Tensor:           # -> [Z, L, D]
        return x.expand(*batch, length, d).reshape(-1, length, d).contiguous()

    out = FlashAttentionFunction.apply(flat(q, lq), flat(k, lk), flat(v, lk),
                                       bool(is_causal), float(scale))
    return out.reshape(*batch, lq, d)
