"""Tests of lib.optim against torch.optim.AdamW / SGD, torch.nn.utils.clip_grad_norm_, the
schedule's formula written out, and a run resumed from a checkpoint."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.optim import (
    SGD, AdamW, clip_grad_norm, cosine_lr, load_checkpoint, save_checkpoint,
)


def two_copies(seed: int, dtype=torch.float32):
    """Two identical small parameter lists (a matrix, a vector, a scalar)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), ()]
    base = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    return ([torch.nn.Parameter(t.clone()) for t in base],
            [torch.nn.Parameter(t.clone()) for t in base])


def run_both(ours, theirs, params_a, params_b, steps: int, seed: int):
    """Feed both optimisers the same random gradients for ``steps`` steps."""
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        for a, b in zip(params_a, params_b):
            grad = torch.randn(a.shape, generator=g, dtype=a.dtype) * 3
            a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adamw_equals_torch_bit_for_bit_over_many_steps(weight_decay, dtype):
    a, b = two_copies(0, dtype)
    kwargs = dict(lr=3e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    ours = AdamW(a, **kwargs)
    theirs = torch.optim.AdamW(b, foreach=False, **kwargs)
    run_both(ours, theirs, a, b, steps=200, seed=0)
    for x, y in zip(a, b):
        assert torch.equal(x, y), f"max difference {(x - y).abs().max().item()}"


def test_adamw_matches_torch_default_implementation_to_rounding():
    a, b = two_copies(1)
    ours, theirs = AdamW(a, weight_decay=0.5), torch.optim.AdamW(b, weight_decay=0.5)
    run_both(ours, theirs, a, b, steps=100, seed=1)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_adamw_first_step_is_lr_times_sign_plus_decay():
    # at t=1: m/(1-b1) = g, sqrt(v/(1-b2)) = |g|, so the step is lr * sign(g) (eps aside)
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    p.grad = torch.tensor([0.5, -4.0], dtype=torch.float64)
    AdamW([p], lr=0.1, eps=0.0, weight_decay=0.2).step()
    expected = torch.tensor([1.0, -2.0], dtype=torch.float64) * (1 - 0.1 * 0.2) \
        - 0.1 * torch.tensor([1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(p.detach(), expected)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # with a zero gradient Adam's step is 0, only the decay acts: theta (1 - lr wd)^t
    p = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = torch.zeros_like(p)
        opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.0 * 0.95 ** 3], dtype=torch.float64))


def test_adamw_skips_parameters_without_gradients():
    a = torch.nn.Parameter(torch.ones(2))
    AdamW([a]).step()
    assert torch.equal(a.detach(), torch.ones(2))


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_sgd_momentum_equals_torch(nesterov, weight_decay):
    a, b = two_copies(2, torch.float64)
    kwargs = dict(lr=1e-2, momentum=0.9, weight_decay=weight_decay, nesterov=nesterov)
    ours, theirs = SGD(a, **kwargs), torch.optim.SGD(b, foreach=False, **kwargs)
    run_both(ours, theirs, a, b, steps=100, seed=2)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-12)


def test_plain_sgd_is_one_gradient_step():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    p.grad = torch.tensor([0.5, -1.0])
    SGD([p], lr=0.1).step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.95, 2.1]))


def schedule_formula(t, max_lr, min_lr, warmup, total):
    if t < warmup:
        return t / warmup * max_lr
    if t <= total:
        return min_lr + 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) \
            * (max_lr - min_lr)
    return min_lr


def test_cosine_lr_known_points():
    assert cosine_lr(0, 1.0, 0.1, 10, 110) == 0.0
    assert cosine_lr(5, 1.0, 0.1, 10, 110) == pytest.approx(0.5)
    assert cosine_lr(10, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert cosine_lr(60, 1.0, 0.1, 10, 110) == pytest.approx(0.55)
    assert cosine_lr(110, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert cosine_lr(500, 1.0, 0.1, 10, 110) == 0.1
    assert cosine_lr(7, 1.0, 0.1, 0, 0) == 0.1


@settings(max_examples=50, deadline=None)
@given(t=st.integers(0, 300), warmup=st.integers(1, 50), extra=st.integers(1, 200),
       max_lr=st.floats(1e-5, 1.0), frac=st.floats(0.0, 1.0))
def test_cosine_lr_equals_the_formula_and_stays_in_range(t, warmup, extra, max_lr, frac):
    min_lr = frac * max_lr
    lr = cosine_lr(t, max_lr, min_lr, warmup, warmup + extra)
    assert lr == pytest.approx(schedule_formula(t, max_lr, min_lr, warmup, warmup + extra))
    assert 0.0 <= lr <= max_lr * (1 + 1e-12)
    if t >= warmup:
        assert lr >= min_lr * (1 - 1e-12)


def test_cosine_lr_is_monotone_after_warm_up():
    rates = [cosine_lr(t, 1.0, 0.1, 10, 110) for t in range(10, 120)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def grads_like(seed: int, scale: float):
    a, b = two_copies(seed)
    g = torch.Generator().manual_seed(seed + 7)
    for x, y in zip(a, b):
        grad = torch.randn(x.shape, generator=g) * scale
        x.grad, y.grad = grad.clone(), grad.clone()
    return a, b


@pytest.mark.parametrize("scale, max_norm", [(10.0, 1.0), (0.01, 1.0), (1.0, 0.5)])
def test_clip_grad_norm_equals_torch(scale, max_norm):
    a, b = grads_like(3, scale)
    ours = clip_grad_norm(a, max_norm)
    theirs = torch.nn.utils.clip_grad_norm_(b, max_norm)
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(a, b):
        torch.testing.assert_close(x.grad, y.grad)


def test_clip_grad_norm_uses_the_global_norm_not_one_per_tensor():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])  # global norm 5
    norm = clip_grad_norm([a, b], max_norm=1.0, eps=0.0)
    assert norm.item() == pytest.approx(5.0)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.0]))
    torch.testing.assert_close(b.grad, torch.tensor([0.8]))


def test_clip_grad_norm_leaves_small_gradients_alone_and_skips_missing_ones():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([0.3, 0.4])
    assert clip_grad_norm([a, b], max_norm=1.0).item() == pytest.approx(0.5)
    assert torch.equal(a.grad, torch.tensor([0.3, 0.4])) and b.grad is None
    assert clip_grad_norm([b], max_norm=1.0).item() == 0.0


def train(model, opt, gen, steps, start=0):
    """A few steps of a toy regression whose batches and dropout draw random numbers."""
    losses = []
    for t in range(start, start + steps):
        x = torch.randn(8, 4, generator=gen)
        y = x.sum(-1, keepdim=True)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(t, 1e-2, 1e-3, 3, 20)
        loss = torch.nn.functional.mse_loss(torch.nn.functional.dropout(model(x), 0.1), y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("opt_class", [AdamW, SGD])
def test_resumed_run_continues_bit_identically(opt_class, tmp_path):
    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        kwargs = dict(momentum=0.9) if opt_class is SGD else {}
        return model, opt_class(model.parameters(), lr=1e-2, **kwargs), torch.Generator().manual_seed(1)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # multi-threaded CPU reductions need not be bit-reproducible
    try:
        check_resume(fresh, tmp_path)
    finally:
        torch.set_num_threads(threads)


def check_resume(fresh, tmp_path):
    model, opt, gen = fresh()
    straight = train(model, opt, gen, 10)
    final = [p.detach().clone() for p in model.parameters()]

    model, opt, gen = fresh()
    first = train(model, opt, gen, 5)
    save_checkpoint(tmp_path / "ckpt.pt", model, opt, step=5, generator=gen)
    train(model, opt, gen, 3, start=5)  # wander off, then come back
    model, opt, gen = fresh()
    torch.manual_seed(123)  # the global state must come from the checkpoint too
    step = load_checkpoint(tmp_path / "ckpt.pt", model, opt, generator=gen)
    assert step == 5
    resumed = first + train(model, opt, gen, 5, start=step)
    assert resumed == straight
    for x, y in zip(model.parameters(), final):
        assert torch.equal(x.detach(), y)


def test_optimizer_value_errors():
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match="betas\\[1\\]"):
        AdamW(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        AdamW(p, lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW(p, weight_decay=-0.1)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, nesterov=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(p, -1.0)
    with pytest.raises(ValueError, match="warmup_iters"):
        cosine_lr(0, 1.0, 0.0, 10, 5)


def test_load_checkpoint_needs_the_generator_it_saved(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = AdamW(model.parameters())
    save_checkpoint(tmp_path / "c.pt", model, opt, 0, generator=torch.Generator())
    with pytest.raises(ValueError, match="generator"):
        load_checkpoint(tmp_path / "c.pt", model, opt)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3), max_norm=st.floats(1e-2, 10.0))
def test_clipping_caps_the_global_norm_and_keeps_the_direction(seed, scale, max_norm):
    a, _ = grads_like(seed, scale)
    before = torch.cat([p.grad.flatten() for p in a]).clone()
    norm = clip_grad_norm(a, max_norm)
    after = torch.cat([p.grad.flatten() for p in a])
    assert norm.item() == pytest.approx(before.norm().item(), rel=1e-5)
    assert after.norm().item() <= max_norm * (1 + 1e-5)
    if norm.item() <= max_norm:
        assert torch.equal(after, before)
    cosine = torch.dot(after, before) / (after.norm() * before.norm())
    assert cosine.item() == pytest.approx(1.0, abs=1e-5)


def test_step_evaluates_the_closure_with_grad_enabled_and_returns_its_loss():
    from lib.optim import SGD, AdamW

    for make in (lambda p: AdamW([p], lr=0.1), lambda p: SGD([p], lr=0.1, momentum=0.9)):
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        opt = make(w)

        def closure():
            opt.zero_grad()
            loss = (w ** 2).sum()
            loss.backward()
            return loss

        with torch.no_grad():                      # step must turn autograd back on
            loss = opt.step(closure)
        assert loss.item() == 5.0 and w.grad is not None
        assert not torch.equal(w.detach(), torch.tensor([1.0, -2.0]))
        assert opt.step() is None
