"""Low-rank adaptation (LoRA) of a linear layer, in torch.

A frozen weight ``W [d_out, d_in]`` is adapted by a trainable low-rank update

    W' = W + (alpha / r) * B @ A,     A [r, d_in],  B [d_out, r],

so a layer ``y = x W^T + b`` becomes

    y = x W^T + b + (alpha / r) * (x A^T) B^T.

``B`` starts at zero, so the adapted model equals the base model at step 0; ``A`` starts
random so that the gradient of ``B`` is not zero. The factor ``alpha / r`` is Hu et al.'s
(2021) way to make a change of rank need little retuning with Adam: after Adam's first step
the first-order change of the loss does not depend on ``r``, although the norm of the update
falls like ``1 / sqrt(r)``; rsLoRA (Kalajdzievski, 2023) scales by ``alpha / sqrt(r)``
instead, which keeps that norm (``tests/test_lib_docstring_claims.py`` measures both).
Merging folds the update into ``W`` so inference costs nothing extra.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lib._checks import check_in_range, check_ndim, shape_of


def _check_factors(A: torch.Tensor, B: torch.Tensor) -> None:
    check_ndim("A", A, 2)
    check_ndim("B", B, 2)
    if B.shape[1] != A.shape[0]:
        raise ValueError(
            f"B must have shape [d_out, r] with r = A.shape[0], "
            f"got A {shape_of(A)} and B {shape_of(B)}"
        )


def lora_delta(A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    """The weight update ``(alpha / r) * B @ A``.

    Args:
        A: ``[r, d_in]``, the down-projection.
        B: ``[d_out, r]``, the up-projection.
        alpha: the LoRA scale; the update is multiplied by ``alpha / r``.

    Returns:
        ``[d_out, d_in]``, same dtype as ``A``.
    """
    _check_factors(A, B)
    r = A.shape[0]
    return (alpha / r) * (B @ A)  # [d_out, r] @ [r, d_in] -> [d_out, d_in]


def merge_lora(weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
               alpha: float) -> torch.Tensor:
    """The merged weight ``W + (alpha / r) * B @ A`` (``weight`` is ``[d_out, d_in]``)."""
    check_ndim("weight", weight, 2)
    delta = lora_delta(A, B, alpha)  # [d_out, d_in]
    if delta.shape != weight.shape:
        raise ValueError(
            f"weight must have shape [d_out, d_in] = {shape_of(delta)} to match B @ A, "
            f"got weight {shape_of(weight)}"
        )
    return weight + delta


def lora_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    """The unmerged LoRA forward pass ``x W^T + b + (alpha/r) (x A^T) B^T``.

    The low-rank path is computed as two thin matmuls, never forming ``B @ A``:
    ``x [..., d_in] -> [..., r] -> [..., d_out]``.

    Args:
        x: ``[..., d_in]``.
        weight: ``[d_out, d_in]`` (frozen).
        bias: ``[d_out]`` or None.
        A: ``[r, d_in]``; B: ``[d_out, r]``; alpha: the LoRA scale.

    Returns:
        ``[..., d_out]``.
    """
    check_ndim("weight", weight, 2)
    _check_factors(A, B)
    if x.shape[-1] != weight.shape[1] or A.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x [..., d_in], weight [d_out, d_in] and A [r, d_in] must agree on d_in, "
            f"got x {shape_of(x)}, weight {shape_of(weight)}, A {shape_of(A)}"
        )
    if B.shape[0] != weight.shape[0]:
        raise ValueError(
            f"B must have shape [d_out, r] with d_out = weight.shape[0], "
            f"got weight {shape_of(weight)} and B {shape_of(B)}"
        )
    r = A.shape[0]
    base = x @ weight.T  # [..., d_out]
    if bias is not None:
        base = base + bias
    low_rank = (x @ A.T) @ B.T  # [..., r] -> [..., d_out]
    return base + (alpha / r) * low_rank


def lora_parameter_count(d_in: int, d_out: int, r: int) -> int:
    """Trainable parameters of one LoRA adapter: ``r * (d_in + d_out)``."""
    for name, value in (("d_in", d_in), ("d_out", d_out), ("r", r)):
        check_in_range(name, value, 1, math.inf)
    return r * (d_in + d_out)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable LoRA adapter.

    ``A`` is drawn from ``N(0, 1/d_in)`` (so ``x A^T`` has unit-scale entries for unit-scale
    ``x``) and ``B`` is zero, so at initialization the module computes exactly the base
    layer. Only ``A`` and ``B`` require gradients.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_in_range("r", r, 1, min(base.in_features, base.out_features))
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha = r, alpha
        weight = base.weight
        a = torch.randn(r, base.in_features, generator=generator,
                        dtype=weight.dtype, device=weight.device)
        self.A = nn.Parameter(a / math.sqrt(base.in_features))  # [r, d_in]
        self.B = nn.Parameter(torch.zeros(base.out_features, r,
                                          dtype=weight.dtype, device=weight.device))  # [d_out, r]

    @property
    def scaling(self) -> float:
        """The factor ``alpha / r`` applied to the low-rank path."""
        return self.alpha / self.r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., d_in] -> [..., d_out]`` through the base layer plus the adapter."""
        return lora_linear(x, self.base.weight, self.base.bias, self.A, self.B, self.alpha)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is ``W + (alpha/r) B A`` (for inference)."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                        dtype=base.weight.dtype, device=base.weight.device)
        with torch.no_grad():
            out.weight.copy_(merge_lora(base.weight, self.A, self.B, self.alpha))
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out
