"""Optimisers, the learning-rate schedule, gradient clipping and checkpoints (torch).

* ``AdamW`` (Loshchilov & Hutter 2019): Adam's moments with bias correction, and weight
  decay *decoupled* from the gradient (the parameter shrinks by ``lr * weight_decay``; the
  decay never enters the moments). Update for one parameter at step ``t = 1, 2, ...``::

      theta <- theta * (1 - lr * wd)
      m     <- beta1 m + (1 - beta1) g            v <- beta2 v + (1 - beta2) g^2
      theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

  in the same order of floating-point operations as ``torch.optim.AdamW(foreach=False)``,
  so the two agree bit for bit.
* ``SGD`` with (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``.
* ``cosine_lr``: linear warm-up, cosine decay, then a floor.
* ``clip_grad_norm``: one scale for *all* gradients, from their global L2 norm.
* ``save_checkpoint`` / ``load_checkpoint``: model, optimiser, step and random state, so a
  resumed run continues bit-identically.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch

from lib._checks import check_in_range


def _check_betas(betas: tuple[float, float]) -> None:
    for i, beta in enumerate(betas):
        check_in_range(f"betas[{i}]", beta, 0.0, 1.0, high_open=True)



def _evaluate(closure):
    """``closure()`` with autograd on (it recomputes the loss and its gradients), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()

class AdamW(torch.optim.Optimizer):
    """AdamW with decoupled weight decay; equal to ``torch.optim.AdamW`` step for step.

    State per parameter: ``step`` (int), ``exp_avg`` = m and ``exp_avg_sq`` = v, both of the
    parameter's shape and dtype, zero before the first step.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        check_in_range("lr", lr, 0.0, math.inf)
        _check_betas(betas)
        check_in_range("eps", eps, 0.0, math.inf)
        check_in_range("weight_decay", weight_decay, 0.0, math.inf)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v, g = state["step"], state["exp_avg"], state["exp_avg_sq"], p.grad
                p.mul_(1 - lr * weight_decay)  # decoupled: the decay is not in m or v
                m.lerp_(g, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
                step_size = lr / (1 - beta1 ** t)  # bias correction of m
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)  # eps outside sqrt
                p.addcdiv_(m, denom, value=-step_size)
        return loss


class SGD(torch.optim.Optimizer):
    """SGD with momentum, as ``torch.optim.SGD`` (dampening 0).

    ``d = g + weight_decay * theta`` (L2, coupled); the buffer is ``b = d`` at the first
    step, then ``b = momentum * b + d``; the step is ``theta -= lr * b``, or with Nesterov
    ``theta -= lr * (d + momentum * b)``.
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        check_in_range("lr", lr, 0.0, math.inf)
        check_in_range("momentum", momentum, 0.0, 1.0, high_open=True)
        check_in_range("weight_decay", weight_decay, 0.0, math.inf)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])  # L2: decay inside the gradient
                if momentum:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d.clone()  # b_1 = d_1
                    else:
                        state["momentum_buffer"].mul_(momentum).add_(d)
                    b = state["momentum_buffer"]
                    d = d.add(b, alpha=momentum) if group["nesterov"] else b
                p.add_(d, alpha=-lr)
        return loss


def cosine_lr(t: int, max_lr: float, min_lr: float, warmup_iters: int,
              cosine_iters: int) -> float:
    """The learning rate at step ``t``: linear warm-up, cosine decay, then ``min_lr``.

    ``t / warmup_iters * max_lr`` for ``t < warmup_iters`` (so step 0 has rate 0);
    ``min_lr + (1 + cos(pi (t - warmup_iters) / (cosine_iters - warmup_iters))) / 2
    * (max_lr - min_lr)`` for ``warmup_iters <= t <= cosine_iters`` (``max_lr`` at the
    start, ``min_lr`` at the end); ``min_lr`` after ``cosine_iters``.

    Example: ``cosine_lr(5, 1.0, 0.0, 10, 20) = 0.5``, ``cosine_lr(15, 1.0, 0.0, 10, 20)
    = 0.5``.
    """
    if warmup_iters < 0 or cosine_iters < warmup_iters:
        raise ValueError(f"need 0 <= warmup_iters <= cosine_iters, got warmup_iters="
                         f"{warmup_iters}, cosine_iters={cosine_iters}")
    if t < warmup_iters:
        return t / warmup_iters * max_lr
    if t > cosine_iters:
        return min_lr
    if cosine_iters == warmup_iters:  # no decay phase: t == cosine_iters here
        return max_lr
    progress = (t - warmup_iters) / (cosine_iters - warmup_iters)  # in [0, 1]
    return min_lr + (1 + math.cos(math.pi * progress)) / 2 * (max_lr - min_lr)


def clip_grad_norm(params: Iterable[torch.Tensor] | torch.Tensor, max_norm: float,
                   eps: float = 1e-6) -> torch.Tensor:
    """Clip by the *global* norm ``N = sqrt(sum over all parameters of ||g||^2)``.

    If ``N > max_norm``, every gradient is multiplied in place by ``max_norm / (N + eps)``
    (one factor for all, so the update keeps its direction); otherwise nothing changes.
    Parameters without a gradient are skipped. Returns ``N`` before clipping, a 0-d
    tensor in the gradients' (promoted) dtype; 0 when no parameter has a gradient.
    """
    check_in_range("max_norm", max_norm, 0.0, math.inf)
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    per_tensor = torch.stack([torch.linalg.vector_norm(g) for g in grads])  # [P]
    total = torch.linalg.vector_norm(per_tensor)  # [] the global norm
    if total > max_norm:  # note: a CPU-GPU sync point
        scale = max_norm / (total + eps)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return total


def save_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, step: int,
                    generator: torch.Generator | None = None) -> None:
    """Write model and optimiser state, ``step`` and the random state to ``path``.

    The random state is torch's global CPU generator, and ``generator`` if the run draws
    its batches from its own (CUDA generators too when CUDA is present). Everything a
    resumed run needs to continue bit-identically; see ``load_checkpoint``.
    """
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "torch_rng": torch.get_rng_state(),
        "generator_rng": None if generator is None else generator.get_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save(state, path)


def load_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer,
                    generator: torch.Generator | None = None) -> int:
    """Restore what ``save_checkpoint`` wrote into ``model``, ``optimizer`` (and
    ``generator``), reset torch's random state, and return the saved step."""
    state = torch.load(path, weights_only=True)
    if (generator is None) != (state["generator_rng"] is None):
        raise ValueError("generator must be given exactly when the checkpoint saved one, "
                         f"got generator={generator!r}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if generator is not None:
        generator.set_state(state["generator_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["step"]
