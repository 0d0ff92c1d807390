"""flash_attention on CUDA at realistic sizes, including bfloat16.

Skipped without a CUDA device. The reference is the float64 formula on the GPU. Rather
than a hand-picked tolerance per dtype, the kernel's error is compared with the error of
``torch.nn.functional.scaled_dot_product_attention`` on the same low-precision inputs
(both against float64): a correct fused kernel rounds in the same places (scores in
float32, ``P`` rounded to the input dtype before ``P V``), so its error must be of the
same size. float32 inputs go through ``tl.dot`` in TF32 (10-bit mantissa, like
``torch.backends.cuda.matmul.allow_tf32``), so float32 is held to 1e-2 absolute, not 1e-6.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lib.attention import flash_attention

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (the CPU path is tested in "
                                       "tests/test_lib_flash.py through the interpreter)")


def reference(q, k, v, is_causal):
    """float64 softmax(q k^T / sqrt(D) + bottom-right causal mask) v."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    lq, lk = s.shape[-2:]
    if is_causal:
        i = torch.arange(lq, device=s.device)[:, None]
        j = torch.arange(lk, device=s.device)[None, :]
        s = s.masked_fill(j > i + lk - lq, -math.inf)
    return torch.softmax(s, dim=-1).nan_to_num(0.0) @ v


def run(fn, q, k, v, grad_out, is_causal):
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    out = fn(q, k, v, is_causal)
    out.backward(grad_out)
    return [out.detach(), q.grad, k.grad, v.grad]


def flash(q, k, v, is_causal):
    return flash_attention(q, k, v, is_causal=is_causal)


def sdpa(q, k, v, is_causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def ref64(q, k, v, is_causal):
    return reference(q, k, v, is_causal)


def inputs(b, h, lq, lk, d, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    make = lambda n: torch.randn(b, h, n, d, device="cuda", dtype=dtype, generator=g)  # noqa
    q, k, v = make(lq), make(lk), make(lk)
    return q, k, v, make(lq)


def max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("n,d", [(1024, 64), (2048, 128), (1000, 128), (4096, 64)])
def test_error_is_no_worse_than_sdpa(n, d, is_causal, dtype):
    q, k, v, do = inputs(2, 4, n, n, d, dtype)
    want = run(ref64, q, k, v, do.double(), is_causal)
    got = run(flash, q, k, v, do, is_causal)
    torch_ = run(sdpa, q, k, v, do, is_causal)
    for name, g, t, w in zip(["out", "dq", "dk", "dv"], got, torch_, want):
        assert g.dtype == dtype and g.shape == w.shape
        ours, theirs = max_err(g, w), max_err(t, w)
        assert ours <= 2 * theirs + 1e-3, f"{name}: flash {ours:.2e} vs sdpa {theirs:.2e}"


@pytest.mark.parametrize("is_causal", [False, True])
def test_float32_within_tf32_tolerance(is_causal):
    q, k, v, do = inputs(1, 4, 777, 777, 64, torch.float32)
    want = run(ref64, q, k, v, do.double(), is_causal)
    got = run(flash, q, k, v, do, is_causal)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("lq,lk", [(300, 1100), (1100, 300), (1, 4097), (129, 64)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unequal_lengths_bottom_right_causal(lq, lk, dtype):
    q, k, v, do = inputs(1, 2, lq, lk, 128, dtype)
    want = run(ref64, q, k, v, do.double(), True)
    got = run(flash, q, k, v, do, True)
    tol = 2e-2 if dtype == torch.float16 else 8e-2
    for g, w in zip(got, want):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), w, atol=tol, rtol=tol)
    if lq > lk:  # queries 0 .. lq-lk-1 see no key: zero output and zero dq
        assert torch.all(got[0][..., : lq - lk, :] == 0)
        assert torch.all(got[1][..., : lq - lk, :] == 0)


@pytest.mark.parametrize("d", [16, 32, 64, 128])
def test_every_head_dim(d):
    q, k, v, do = inputs(2, 2, 513, 513, d, torch.float16)
    want = run(ref64, q, k, v, do.double(), False)
    got = run(flash, q, k, v, do, False)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, atol=2e-2, rtol=2e-2)


def test_cpu_interpreter_and_cuda_kernel_agree_in_one_process():
    q, k, v, _ = inputs(1, 2, 40, 40, 32, torch.float32)
    gpu = flash_attention(q, k, v, is_causal=True)          # compiled
    cpu = flash_attention(q.cpu(), k.cpu(), v.cpu(), is_causal=True)  # interpreted
    again = flash_attention(q, k, v, is_causal=True)        # compiled, after the interpreter
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-2, rtol=1e-2)  # TF32 on the GPU
    assert torch.equal(gpu, again)
