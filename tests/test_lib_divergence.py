"""lib.divergence against torch.nn.functional.kl_div, torch.distributions and formulas."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.divergence import cross_entropy, entropy, gaussian_kl, kl_divergence, kl_estimators

# Property tests run without a deadline: on a shared 2-core machine one example can take
# hundreds of milliseconds for reasons unrelated to the code under test.


def distributions(v=st.integers(2, 8)):
    """Hypothesis strategy: a pair of float64 distributions of the same size, some zeros."""
    weights = st.floats(0.0, 10.0, allow_nan=False)

    def normalize(ws):
        t = torch.tensor(ws, dtype=torch.float64)
        t[0] += 0.1                                    # at least one positive entry
        return t / t.sum()
    return v.flatmap(lambda n: st.tuples(st.lists(weights, min_size=n, max_size=n).map(normalize),
                                         st.lists(weights, min_size=n, max_size=n).map(normalize)))


def test_worked_example_from_the_curriculum():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.8, 0.2])
    by_hand = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)   # = 0.5 log(25/16)
    assert kl_divergence(p, q).item() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(0.22314355, rel=1e-7)
    assert kl_divergence(q, p).item() == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4))


def test_kl_matches_torch_kl_div_batched():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(3, 4, 7, generator=g, dtype=torch.float64), -1)
    q = torch.softmax(torch.randn(3, 4, 7, generator=g, dtype=torch.float64), -1)
    ref = F.kl_div(q.log(), p, reduction="none").sum(-1)              # sum p (log p - log q)
    out = kl_divergence(p, q)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, ref)


def test_zero_mass_conventions():
    assert kl_divergence(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])).item() == \
        pytest.approx(math.log(2.0))                                # p_i = 0 adds nothing
    assert kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == math.inf
    assert kl_divergence(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])).item() == 0.0
    assert entropy(torch.tensor([1.0, 0.0])).item() == 0.0


@settings(deadline=None)
@given(distributions())
def test_gibbs_inequality_and_decomposition(pq):
    p, q = pq
    assert kl_divergence(p, q).item() >= -1e-12
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-12)
    if (q > 0).all():
        torch.testing.assert_close(cross_entropy(p, q), entropy(p) + kl_divergence(p, q))


@settings(deadline=None)
@given(distributions())
def test_entropy_matches_torch_categorical(pq):
    p, _ = pq
    torch.testing.assert_close(entropy(p), torch.distributions.Categorical(probs=p).entropy())


def test_gaussian_kl_matches_torch_distributions():
    mu_q, s_q = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 0.5, 3.0])
    mu_p, s_p = torch.tensor([0.3, -1.0, 0.0]), torch.tensor([2.0, 0.5, 1.0])
    N = torch.distributions.Normal
    torch.testing.assert_close(gaussian_kl(mu_q, s_q, mu_p, s_p),
                               torch.distributions.kl_divergence(N(mu_q, s_q), N(mu_p, s_p)))


def test_estimator_formulas_and_signs():
    log_r = torch.linspace(-3, 3, 13, dtype=torch.float64)
    est = kl_estimators(log_r, torch.zeros_like(log_r))
    r = log_r.exp()
    torch.testing.assert_close(est["k1"], -log_r)
    torch.testing.assert_close(est["k2"], log_r ** 2 / 2)
    torch.testing.assert_close(est["k3"], (r - 1) - log_r)
    assert (est["k3"] >= 0).all() and (est["k2"] >= 0).all() and (est["k1"] < 0).any()


@settings(deadline=None)
@given(st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=20))
def test_k2_and_k3_are_never_negative(log_r):
    log_r = torch.tensor(log_r, dtype=torch.float64)
    est = kl_estimators(log_r, torch.zeros_like(log_r))
    assert (est["k2"] >= 0).all() and (est["k3"] >= 0).all()
    torch.testing.assert_close(est["k3"] - est["k1"], torch.expm1(log_r))   # the control variate


def test_k3_keeps_precision_near_r_equal_1():
    log_r = torch.tensor([1e-6], dtype=torch.float32)
    k3 = kl_estimators(log_r, torch.zeros_like(log_r))["k3"]
    assert k3.item() == pytest.approx(0.5e-12, rel=1e-3)             # (log r)^2 / 2 to leading order


@pytest.mark.parametrize("shift", [0.1, 0.5, 1.0])
def test_k1_k3_unbiased_and_k2_bias_by_monte_carlo(shift):
    # q = N(0, 1), p = N(shift, 1): KL(q||p) = shift^2 / 2 and log r = shift * x - shift^2 / 2,
    # so E_q[k2] = E[(shift x - shift^2/2)^2] / 2 = (shift^2 + shift^4 / 4) / 2 exactly.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, generator=g, dtype=torch.float64)
    q, p = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(shift, 1.0)
    est = kl_estimators(p.log_prob(x), q.log_prob(x))
    exact = gaussian_kl(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(shift),
                        torch.tensor(1.0)).item()
    assert exact == pytest.approx(shift ** 2 / 2)
    for name in ("k1", "k3"):
        stderr = est[name].std().item() / math.sqrt(len(x))
        assert abs(est[name].mean().item() - exact) < 5 * stderr
    assert est["k2"].mean().item() == pytest.approx((shift ** 2 + shift ** 4 / 4) / 2, rel=0.02)
    assert est["k3"].std() < est["k1"].std()                        # the control variate helps


def test_k2_generator_is_not_convex_but_matches_kl_to_second_order():
    # The docstring's claims about f(r) = (log r)^2 / 2, the function whose mean k2 is.
    def f(r):
        return 0.5 * torch.log(r) ** 2

    r = torch.linspace(0.1, 30.0, 500, dtype=torch.float64, requires_grad=True)
    (df,) = torch.autograd.grad(f(r).sum(), r, create_graph=True)
    (d2f,) = torch.autograd.grad(df.sum(), r)
    r = r.detach()
    torch.testing.assert_close(d2f, (1 - torch.log(r)) / r ** 2)
    assert (d2f[r > math.e + 1e-6] < 0).all(), "f'' should be negative beyond r = e"
    a, b = torch.tensor(4.0, dtype=torch.float64), torch.tensor(12.0, dtype=torch.float64)
    assert f((a + b) / 2) > (f(a) + f(b)) / 2, "midpoint convexity should fail for 4 and 12"
    one = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(f(one), one, create_graph=True)
    (d2,) = torch.autograd.grad(d1, one)
    assert d1.item() == 0.0 and d2.item() == pytest.approx(1.0), f"f'(1)={d1}, f''(1)={d2}"


def test_k2_is_unbounded_but_k3_has_the_exponential_tail():
    log_r = torch.tensor([5.0, 10.0, 40.0], dtype=torch.float64)
    est = kl_estimators(log_r, torch.zeros_like(log_r))
    torch.testing.assert_close(est["k2"], log_r ** 2 / 2)           # 800 at log r = 40
    assert est["k2"][-1].item() == pytest.approx(800.0), f"k2 at log r = 40: {est['k2'][-1]}"
    assert (est["k3"] > 10 * est["k2"]).all(), f"k3 {est['k3']} vs k2 {est['k2']}"


@pytest.mark.parametrize("call, match", [
    (lambda: kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5])), "same shape"),
    (lambda: kl_divergence(torch.tensor([1.5, -0.5]), torch.tensor([0.5, 0.5])), r"in \[0, 1\]"),
    (lambda: kl_divergence(torch.tensor([0.3, 0.3]), torch.tensor([0.5, 0.5])), "sum to 1"),
    (lambda: kl_divergence(torch.tensor([1, 0]), torch.tensor([1, 0])), "floating-point"),
    (lambda: kl_divergence(torch.tensor(1.0), torch.tensor(1.0)), "at least 1 dimensions"),
    (lambda: entropy(torch.tensor([0.2, 0.2])), "sum to 1"),
    (lambda: cross_entropy(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5, 0.0])), "same shape"),
    (lambda: kl_estimators(torch.zeros(3), torch.zeros(4)), "same shape"),
    (lambda: gaussian_kl(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0),
                         torch.tensor(1.0)), "sigma_q must be > 0"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
