"""Tests of lib.attention.blocked_attention and lib.attention.flash_attention on the CPU.

The reference is the textbook formula written out below in float64 (``naive_attention``)
and, where the alignments agree (``Lq == Lk``), ``torch.nn.functional.
scaled_dot_product_attention``. ``flash_attention`` on CPU tensors runs the Triton kernels
through Triton's interpreter (NumPy, one program at a time), so the shapes stay small.

Tolerances. ``blocked_attention`` in float64 is exact to 1e-10. The interpreted kernel's
float32 ``tl.dot`` is a plain float32 matmul (no TF32 on the CPU), so float32 agrees to
~1e-6. In float16 the inputs carry a relative rounding error of 2^-11 ~ 5e-4, and the
kernel also rounds ``P`` (forward) and ``dS`` (backward) to float16 before the second
matmul, so we allow 5e-3 on outputs of order 1 and 2e-2 on gradients.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import triton.language as tl
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from triton.runtime.jit import JITFunction

from lib.attention import blocked_attention, flash_attention
from lib.attention import flash as flash_module

TOL = {torch.float32: dict(out=1e-5, grad=1e-5), torch.float16: dict(out=5e-3, grad=2e-2)}


def naive_attention(q, k, v, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) v in float64, bottom-right causal; returns (out, lse)."""
    q, k, v = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale                               # [..., Lq, Lk]
    lq, lk = s.shape[-2:]
    if is_causal:
        i = torch.arange(lq)[:, None]
        j = torch.arange(lk)[None, :]
        s = s.masked_fill(j > i + lk - lq, -math.inf)
    lse = torch.logsumexp(s, dim=-1)                                  # -inf for empty rows
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)                 # empty rows -> 0
    return p @ v, lse


def rand_qkv(lq, lk, d, batch=(2, 3), dtype=torch.float64, dv=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, lq, d, generator=g, dtype=torch.float64).to(dtype)
    k = torch.randn(*batch, lk, d, generator=g, dtype=torch.float64).to(dtype)
    v = torch.randn(*batch, lk, dv or d, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v


LENGTHS = [(37, 37), (20, 45), (45, 20), (1, 9), (64, 64), (65, 3), (16, 1)]


# ----------------------------------------------------------------------------- blocked
@pytest.mark.parametrize("lq,lk", LENGTHS)
@pytest.mark.parametrize("is_causal", [False, True])
def test_blocked_matches_naive_in_float64(lq, lk, is_causal):
    q, k, v = rand_qkv(lq, lk, 8, dv=5)
    out, lse = blocked_attention(q, k, v, is_causal=is_causal, block_size=16)
    ref_out, ref_lse = naive_attention(q, k, v, is_causal)
    assert out.shape == (2, 3, lq, 5) and lse.shape == (2, 3, lq)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse))
    finite = torch.isfinite(ref_lse)
    torch.testing.assert_close(lse[finite], ref_lse[finite], atol=1e-10, rtol=0)


@pytest.mark.parametrize("is_causal", [False, True])
def test_blocked_matches_torch_sdpa_when_lengths_agree(is_causal):
    q, k, v = rand_qkv(50, 50, 16)
    out, _ = blocked_attention(q, k, v, is_causal=is_causal, block_size=16)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)


@settings(max_examples=30, deadline=None)
@given(lq=st.integers(1, 40), lk=st.integers(1, 40), block=st.integers(1, 50),
       is_causal=st.booleans(), scale=st.floats(0.05, 3.0))
def test_blocked_equals_naive_for_any_block_size(lq, lk, block, is_causal, scale):
    q, k, v = rand_qkv(lq, lk, 4, batch=(2,))
    out, lse = blocked_attention(q, k, v, is_causal=is_causal, scale=scale, block_size=block)
    ref_out, ref_lse = naive_attention(q, k, v, is_causal, scale)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(lse, ref_lse, atol=1e-10, rtol=0)  # equal infs compare equal


@pytest.mark.parametrize("is_causal", [False, True])
def test_blocked_gradients_pass_gradcheck(is_causal):
    q, k, v = (x.requires_grad_() for x in rand_qkv(11, 7, 4, batch=(1,)))

    def f(q, k, v):  # the 4 causal rows that see no key have lse = -inf: leave them out
        out, lse = blocked_attention(q, k, v, is_causal, block_size=3)
        return out, lse[..., 4:]
    assert torch.autograd.gradcheck(f, (q, k, v))


def test_blocked_fully_masked_rows_are_zero_with_zero_finite_gradients():
    q, k, v = (x.requires_grad_() for x in rand_qkv(6, 2, 4, batch=(1,)))
    out, lse = blocked_attention(q, k, v, is_causal=True, block_size=4)
    # Lq - Lk = 4 queries see no key: rows 0..3.
    assert torch.all(out[..., :4, :] == 0) and torch.all(lse[..., :4] == -math.inf)
    (out.sum() + lse[..., 4:].sum()).backward()
    for x in (q, k, v):
        assert torch.isfinite(x.grad).all()
    assert torch.all(q.grad[..., :4, :] == 0)


def test_blocked_broadcasts_leading_dimensions():
    q, _, _ = rand_qkv(9, 9, 4, batch=(2, 1))
    _, k, v = rand_qkv(9, 9, 4, batch=(1, 3), seed=1)
    out, lse = blocked_attention(q, k, v, block_size=4)
    ref_out, ref_lse = naive_attention(q, k, v)
    assert out.shape == (2, 3, 9, 4)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(lse, ref_lse, atol=1e-10, rtol=0)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_blocked_never_builds_more_than_one_score_tile():
    b, h, n, d, block = 1, 2, 256, 4, 32
    q, k, v = rand_qkv(n, n, d, batch=(b, h))
    with LargestTensor() as spy:
        blocked_attention(q, k, v, block_size=block)
    # The output [1, 2, 256, 4] has 2048 elements, one score tile 2 * 32 * 32 = 2048; the
    # full score matrix would have 2 * 256 * 256 = 131072.
    assert spy.largest <= max(b * h * n * d, b * h * block * block)


@pytest.mark.parametrize("bad", ["q_rank", "head_dim", "kv_len", "batch", "block"])
def test_blocked_value_errors(bad):
    q, k, v = rand_qkv(5, 6, 4)
    args = {"q_rank": (q[0, 0, 0], k, v), "head_dim": (q, k[..., :3], v),
            "kv_len": (q, k, v[..., :5, :]), "batch": (q, k[:1].expand(4, 3, 6, 4), v),
            "block": (q, k, v)}[bad]
    match = {"q_rank": "q must have at least 2", "head_dim": "head_dim",
             "kv_len": "number of keys", "batch": "broadcast", "block": "block_size"}[bad]
    with pytest.raises(ValueError, match=match):
        blocked_attention(*args, block_size=0 if bad == "block" else 4)


# ----------------------------------------------------------------------------- flash
def check_flash(lq, lk, d, dtype, is_causal, batch=(1, 2), scale=None, seed=0):
    """Forward and backward of the interpreted kernel against the float64 formula."""
    q, k, v = (x.requires_grad_() for x in rand_qkv(lq, lk, d, batch, dtype, seed=seed))
    out = flash_attention(q, k, v, is_causal=is_causal, scale=scale)
    assert out.dtype == dtype and out.shape == (*batch, lq, d)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).to(dtype)
    out.backward(grad_out)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref, _ = naive_attention(q64, k64, v64, is_causal, scale)
    ref.backward(grad_out.double())
    tol = TOL[dtype]
    torch.testing.assert_close(out.double(), ref, atol=tol["out"], rtol=tol["out"])
    for got, want in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        torch.testing.assert_close(got.double(), want, atol=tol["grad"], rtol=tol["grad"])
    return q, k, v, out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lq,lk", [(37, 37), (20, 45), (45, 20), (16, 32), (1, 9), (16, 1)])
def test_flash_forward_and_backward_match_reference(lq, lk, is_causal, dtype):
    check_flash(lq, lk, 16, dtype, is_causal)


@pytest.mark.parametrize("d", [32, 64, 128])
def test_flash_every_head_dim(d):
    check_flash(19, 23, d, torch.float32, is_causal=True, batch=(1, 1))


def test_flash_custom_scale():
    check_flash(17, 17, 16, torch.float32, is_causal=False, scale=0.37)


def test_flash_fully_masked_rows_give_zeros_and_zero_gradients():
    # Lq > Lk with bottom-right alignment: queries 0..Lq-Lk-1 see no key at all.
    q, k, v, out = check_flash(30, 9, 16, torch.float32, is_causal=True)
    assert torch.all(out[..., :21, :] == 0)
    assert torch.all(q.grad[..., :21, :] == 0)
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


def test_flash_matches_torch_sdpa_and_blocked():
    q, k, v = rand_qkv(33, 33, 16, batch=(1, 2), dtype=torch.float32)
    for is_causal in (False, True):
        out = flash_attention(q, k, v, is_causal=is_causal)
        torch.testing.assert_close(
            out, F.scaled_dot_product_attention(q, k, v, is_causal=is_causal),
            atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            out, blocked_attention(q, k, v, is_causal=is_causal, block_size=16)[0],
            atol=1e-5, rtol=1e-5)


def test_flash_broadcasts_leading_dimensions_and_reduces_their_gradients():
    q = rand_qkv(12, 12, 16, batch=(2, 1), dtype=torch.float32)[0].requires_grad_()
    _, k, v = (x.requires_grad_() for x in rand_qkv(12, 12, 16, batch=(1, 3),
                                                    dtype=torch.float32, seed=1))
    flash_attention(q, k, v).sum().backward()
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    naive_attention(q64, k64, v64)[0].sum().backward()
    for got, want in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        assert got.shape == want.shape
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@settings(max_examples=8, deadline=None)
@given(lq=st.integers(1, 40), lk=st.integers(1, 40), is_causal=st.booleans())
def test_flash_forward_any_lengths(lq, lk, is_causal):
    q, k, v = rand_qkv(lq, lk, 16, batch=(1,), dtype=torch.float32)
    out = flash_attention(q, k, v, is_causal=is_causal)
    ref, _ = naive_attention(q, k, v, is_causal)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_interpreted_launch_leaves_triton_language_as_it_found_it():
    before = (JITFunction.__call__, tl.zeros, tl.max, tl.core.full, tl.core.reduce,
              tl.math.exp2, tl.tensor.__add__)
    q, k, v = rand_qkv(8, 8, 16, batch=(1,), dtype=torch.float32)
    flash_attention(q.requires_grad_(), k, v).sum().backward()
    after = (JITFunction.__call__, tl.zeros, tl.max, tl.core.full, tl.core.reduce,
             tl.math.exp2, tl.tensor.__add__)
    assert all(a is b for a, b in zip(before, after))


@pytest.mark.parametrize("bad", ["bf16_cpu", "head_dim", "dv", "dtype_mix", "scale",
                                 "kv_len"])
def test_flash_value_errors(bad):
    q, k, v = rand_qkv(5, 6, 16, dtype=torch.float32)
    cases = {
        "bf16_cpu": ((q.bfloat16(), k.bfloat16(), v.bfloat16()), {}, "bfloat16|dtype"),
        "head_dim": ((q[..., :12], k[..., :12], v[..., :12]), {}, "head_dim must be one of"),
        "dv": ((q, k, v[..., :8]), {}, "v must have the head_dim"),
        "dtype_mix": ((q, k.half(), v), {}, "share a dtype"),
        "scale": ((q, k, v), {"scale": -1.0}, "scale"),
        "kv_len": ((q, k, v[..., :5, :]), {}, "number of keys"),
    }
    args, kwargs, match = cases[bad]
    with pytest.raises(ValueError, match=match):
        flash_attention(*args, **kwargs)


# ----------------------------------------------------------------------------- GPU build
def _signature(kernel, dtype: str) -> dict:
    """Triton types of a kernel's runtime arguments (pointers, lengths, scales)."""
    sig = {}
    for name in kernel.arg_names:
        if name in ("LSE", "DELTA"):
            sig[name] = "*fp32"
        elif name.isupper():                       # Q, K, V, O, DO, DQ, DK, DV
            sig[name] = f"*{dtype}"
        elif name in ("Lq", "Lk"):
            sig[name] = "i32"
        elif name.endswith("scale"):
            sig[name] = "fp32"
        else:
            sig[name] = "constexpr"
    return sig


@pytest.mark.parametrize("kernel,config", [
    (flash_module._fwd_kernel, dict(BLOCK_M=128, BLOCK_N=64)),
    (flash_module._dkdv_kernel, dict(BLOCK_M=32, BLOCK_N=128)),
    (flash_module._dq_kernel, dict(BLOCK_M=128, BLOCK_N=32)),
], ids=["fwd", "dkdv", "dq"])
def test_kernels_compile_for_an_h100_without_one(kernel, config):
    """The interpreter never compiles; this builds the real sm_90 binary (bf16, causal,
    head_dim 128) with the ptxas that ships with Triton, so compile errors show up in CI."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile as triton_compile
    constexprs = dict(config, HEAD_DIM=128, IS_CAUSAL=True)
    try:
        compiled = triton_compile(ASTSource(kernel, _signature(kernel, "bf16"), constexprs),
                                  target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": 8, "num_stages": 3})
    except FileNotFoundError as err:               # no ptxas on this platform
        pytest.skip(f"Triton's CUDA toolchain is not installed: {err}")
    assert compiled.metadata.shared <= 227 * 1024  # fits in one H100 block's shared memory
