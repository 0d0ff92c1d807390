"""flash_attention against float64 and SDPA: CUDA at realistic sizes, the CPU at small ones.

Every test takes a ``device`` fixture. The ``cuda`` cases run the compiled kernel at the
sizes that matter (skipped without a CUDA device; ``make test-gpu`` runs them); the ``cpu``
cases run the *same* test bodies through the Triton interpreter at small sizes, so
``make test`` exercises this file's logic everywhere and it cannot rot unseen. bfloat16
runs on CUDA only (the interpreter's bfloat16 ``tl.dot`` is wrong, and ``flash_attention``
refuses it on the CPU).

The reference is the float64 formula. Rather than a hand-picked tolerance per dtype, the
kernel's error is compared with the error of ``torch.nn.functional.scaled_dot_product_attention``
on the same low-precision inputs (both against float64): a correct fused kernel rounds in
the same places (scores in float32, ``P`` rounded to the input dtype before ``P V``), so its
error must be of the same size. On a GPU float32 inputs go through ``tl.dot`` in TF32
(10-bit mantissa), so float32 is held to 1e-2 absolute, not 1e-6.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")
from lib.attention import flash_attention  # noqa: E402


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (make test-gpu)"))])
def device(request) -> str:
    return request.param


def size(device: str, cuda: int, cpu: int) -> int:
    """The realistic size on CUDA, a small one for the interpreter."""
    return cuda if device == "cuda" else cpu


def skip_bf16_on_cpu(dtype: torch.dtype, device: str) -> None:
    if dtype == torch.bfloat16 and device == "cpu":
        pytest.skip("bfloat16 is CUDA-only (flash_attention refuses it on the CPU)")


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
    """[out, dq, dk, dv]; the gradients come back in the leaves' (the inputs') dtype."""
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    out = fn(q, k, v, is_causal)
    out.backward(grad_out)
    return [out.detach(), q.grad, k.grad, v.grad]


def flash(q, k, v, is_causal):
    return flash_attention(q, k, v, is_causal=is_causal)


def sdpa(q, k, v, is_causal):  # is_causal is top-left in SDPA: use it with Lq == Lk only
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def ref64(q, k, v, is_causal):
    return reference(q, k, v, is_causal)


def inputs(b, h, lq, lk, d, dtype, device, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    make = lambda n: torch.randn(b, h, n, d, device=device, dtype=dtype, generator=g)  # noqa
    q, k, v = make(lq), make(lk), make(lk)
    return q, k, v, make(lq)


def max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


def close64(got, want, tol):
    """Compare in float64: the reference gradients are in the input dtype (issue 13)."""
    torch.testing.assert_close(got.double(), want.double(), atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("n,d,cpu_n", [(1024, 64, 40), (2048, 128, 33), (1000, 128, 17),
                                       (4096, 64, 64)])
def test_error_is_no_worse_than_sdpa(n, d, cpu_n, is_causal, dtype, device):
    skip_bf16_on_cpu(dtype, device)
    n, d = size(device, n, cpu_n), size(device, d, 32)
    q, k, v, do = inputs(2, 2, n, n, d, dtype, device)
    want = run(ref64, q, k, v, do.double(), is_causal)
    got = run(flash, q, k, v, do, is_causal)
    torch_ = run(sdpa, q, k, v, do, is_causal)
    for name, g, t, w in zip(["out", "dq", "dk", "dv"], got, torch_, want):
        assert g.dtype == dtype and g.shape == w.shape, (name, g.dtype, g.shape, w.shape)
        ours, theirs = max_err(g, w), max_err(t, w)
        assert ours <= 2 * theirs + 1e-3, f"{name}: flash {ours:.2e} vs sdpa {theirs:.2e}"


@pytest.mark.parametrize("is_causal", [False, True])
def test_float32_within_tf32_tolerance(is_causal, device):
    n = size(device, 777, 37)
    q, k, v, do = inputs(1, 2, n, n, 64 if device == "cuda" else 16, torch.float32, device)
    want = run(ref64, q, k, v, do.double(), is_causal)
    got = run(flash, q, k, v, do, is_causal)
    for g, w in zip(got, want):
        close64(g, w, 1e-2)


@pytest.mark.parametrize("lq,lk,cpu_lq,cpu_lk", [(300, 1100, 9, 70), (1100, 300, 70, 9),
                                                 (1, 4097, 1, 97), (129, 64, 33, 16)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unequal_lengths_bottom_right_causal(lq, lk, cpu_lq, cpu_lk, dtype, device):
    skip_bf16_on_cpu(dtype, device)
    lq, lk = size(device, lq, cpu_lq), size(device, lk, cpu_lk)
    q, k, v, do = inputs(1, 2, lq, lk, size(device, 128, 16), dtype, device)
    want = run(ref64, q, k, v, do.double(), True)
    got = run(flash, q, k, v, do, True)
    tol = 2e-2 if dtype == torch.float16 else 8e-2
    for g, w in zip(got, want):
        assert torch.isfinite(g).all()
        close64(g, w, tol)
    if lq > lk:  # queries 0 .. lq-lk-1 see no key: zero output and zero dq
        assert torch.all(got[0][..., : lq - lk, :] == 0)
        assert torch.all(got[1][..., : lq - lk, :] == 0)


@pytest.mark.parametrize("d", [16, 32, 64, 128])
def test_every_head_dim(d, device):
    n = size(device, 513, 19)
    q, k, v, do = inputs(2 if device == "cuda" else 1, 2, n, n, d, torch.float16, device)
    want = run(ref64, q, k, v, do.double(), False)
    got = run(flash, q, k, v, do, False)
    for g, w in zip(got, want):
        close64(g, w, 2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make test-gpu)")
def test_cpu_interpreter_and_cuda_kernel_agree_in_one_process():
    q, k, v, _ = inputs(1, 2, 40, 40, 32, torch.float32, "cuda")
    gpu = flash_attention(q, k, v, is_causal=True)          # compiled
    cpu = flash_attention(q.cpu(), k.cpu(), v.cpu(), is_causal=True)  # interpreted
    again = flash_attention(q, k, v, is_causal=True)        # compiled, after the interpreter
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-2, rtol=1e-2)  # TF32 on the GPU
    assert torch.equal(gpu, again)
