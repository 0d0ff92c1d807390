"""The ``lib`` bad-input audit: every public function rejects bad input by name.

Every public function of every ``lib`` module is enumerated by introspection. Each one
is either listed in ``CASES`` with the bad-input kinds that apply to it (wrong rank, a mask
that does not broadcast, an unknown option, a probability out of range), or in
``NOT_APPLICABLE`` with the reason none applies. A new function that is in neither fails
``test_every_public_function_is_audited``, so the audit keeps up with ``lib``.

Each case must raise ``ValueError`` whose message names the argument and, for shape
problems, the shape received.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch

import lib

A1, A2, A3 = np.ones(4), np.ones((2, 4)), np.ones((2, 3, 4))
T1, T2, T3 = torch.ones(4), torch.ones(2, 4), torch.ones(2, 3, 4)
Q = torch.randn(1, 2, 3, 4)
GEN = np.random.default_rng(0)
P4, P24 = torch.full((4,), 0.25), torch.full((2, 4), 0.25)  # valid distributions


def _module(name: str):
    return importlib.import_module(name)


def public_functions() -> list[str]:
    """``module.name`` of every public function or class defined in a ``lib`` module."""
    found = []
    for info in pkgutil.walk_packages(lib.__path__, "lib."):
        if info.name.split(".")[-1].startswith("_"):
            continue
        module = _module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                found.append(f"{info.name}.{name}")
    return sorted(found)


def call(path: str, *args, **kwargs):
    module, _, name = path.rpartition(".")
    return getattr(_module(module), name)(*args, **kwargs)


# (function, kind, arguments, keyword arguments, words the message must contain)
CASES = [
    ("lib.numerics.logsumexp", "rank", (np.float64(1.0),), {}, ["x", "shape"]),
    ("lib.numerics.softmax", "rank", (np.float64(1.0),), {}, ["x", "shape"]),
    ("lib.numerics.log_softmax", "rank", (np.float64(1.0),), {}, ["x", "shape"]),
    ("lib.numerics.cross_entropy", "rank", (A1, np.array([0])), {}, ["logits", "shape"]),
    ("lib.numerics.cross_entropy", "probability", (A2, np.array([0, 1])),
     {"label_smoothing": 1.5}, ["label_smoothing"]),
    ("lib.numerics.binary_cross_entropy_with_logits", "rank", (A1, np.ones(3)), {},
     ["logits", "targets", "shape"]),
    ("lib.backprop.relative_error", "rank", (A1, np.ones(3)), {}, ["a", "b", "shape"]),
    ("lib.backprop.softmax_jacobian", "rank", (A2,), {}, ["z", "shape"]),
    ("lib.backprop.softmax_backward", "rank", (A2, A3), {}, ["p", "grad_p", "shape"]),
    ("lib.backprop.layernorm_forward", "rank", (A2, np.ones(3), np.ones(4)), {},
     ["gamma", "shape"]),
    ("lib.backprop.rmsnorm_forward", "rank", (A2, np.ones(3)), {}, ["gamma", "shape"]),
    ("lib.backprop.dropout_forward", "probability", (A2, 1.5, GEN), {}, ["p"]),
    ("lib.backprop.dropout_backward", "probability", (A2, np.ones((2, 4), bool), -0.1), {},
     ["p"]),
    ("lib.backprop.mlp_loss_and_grads", "rank",
     ({"W1": np.ones((4, 3)), "b1": np.ones(3), "W2": np.ones((3, 2)), "b2": np.ones(2)},
      A1, np.array([0])), {}, ["X", "shape"]),
    ("lib.calibration.expected_calibration_error", "rank", (A1, np.array([0, 1, 0, 1])), {},
     ["probs", "shape"]),
    ("lib.calibration.expected_calibration_error", "probability",
     (np.array([[1.5, -0.5]]), np.array([0])), {}, ["probs"]),
    ("lib.calibration.reliability_bins", "probability",
     (np.array([[1.5, -0.5]]), np.array([0])), {}, ["probs"]),
    ("lib.calibration.fit_temperature", "rank", (A1, np.array([0])), {}, ["logits", "shape"]),
    ("lib.calibration.nll", "rank", (A1, np.array([0])), {}, ["logits", "shape"]),
    ("lib.calibration.binary_confusion", "rank", (np.ones(3, int), np.ones(4, int)), {},
     ["labels", "preds", "shape"]),
    ("lib.calibration.precision_recall_f1", "rank", (np.ones(3, int), np.ones(4, int)), {},
     ["labels", "preds", "shape"]),
    ("lib.calibration.roc_curve", "rank", (A2, np.ones((2, 4), int)), {}, ["scores", "shape"]),
    ("lib.calibration.roc_auc", "rank", (A2, np.ones((2, 4), int)), {}, ["scores", "shape"]),
    ("lib.calibration.soft_targets", "rank", (A3.astype(int), 3), {}, ["votes", "shape"]),
    ("lib.calibration.majority_vote", "rank", (A3.astype(int), 3), {}, ["votes", "shape"]),
    ("lib.calibration.cohen_kappa", "rank", (np.ones(3, int), np.ones(4, int), 2), {},
     ["a", "b", "shape"]),
    ("lib.calibration.fit_platt", "rank", (np.ones((2, 3)), np.ones(3, int)), {},
     ["scores", "shape"]),
    ("lib.divergence.entropy", "probability", (torch.tensor([1.5, -0.5]),), {}, ["p"]),
    ("lib.divergence.kl_divergence", "rank", (P4, P24), {}, ["p", "q", "shape"]),
    ("lib.divergence.kl_divergence", "probability",
     (torch.tensor([1.5, -0.5]), torch.tensor([0.5, 0.5])), {}, ["p"]),
    ("lib.divergence.cross_entropy", "rank", (P4, P24), {}, ["p", "q", "shape"]),
    ("lib.divergence.kl_estimators", "rank", (T1, T2), {}, ["logp", "logq", "shape"]),
    ("lib.lora.lora_delta", "rank", (T1, T2, 1.0), {}, ["A", "shape"]),
    ("lib.lora.merge_lora", "rank", (T1, torch.ones(4, 2), torch.ones(2, 4), 1.0), {},
     ["weight", "shape"]),
    ("lib.lora.lora_linear", "rank", (T2, T1, None, torch.ones(2, 4), torch.ones(4, 2), 1.0),
     {}, ["weight", "shape"]),
    ("lib.patterns.logistic_loss_and_grad", "rank", (T1.numpy(), 0.0, A1, A1), {},
     ["X", "shape"]),
    ("lib.patterns.predict_proba", "rank", (A1, A1, 0.0), {}, ["X", "shape"]),
    ("lib.patterns.pairwise_sq_dists", "rank", (A1, A2), {}, ["X", "shape"]),
    ("lib.patterns.cosine_similarity", "rank", (A2, np.ones((2, 3))), {}, ["a", "b", "(2, 3)"]),
    ("lib.patterns.kmeans", "option", (A2, 1), {"init": "furthest"}, ["init", "furthest"]),
    ("lib.patterns.pad_batch", "option", ([[1, 2], [3]],), {"side": "middle"},
     ["side", "middle"]),
    ("lib.preference.sequence_logprobs", "rank", (T2, torch.ones(2, 4, dtype=torch.long),
                                                  torch.ones(2, 4)), {}, ["logits", "shape"]),
    ("lib.preference.sequence_logprobs", "mask", (T3, torch.zeros(2, 3, dtype=torch.long),
                                                  torch.ones(2, 5)), {}, ["mask", "shape"]),
    ("lib.preference.bradley_terry_loss", "rank", (T1, T2), {},
     ["r_chosen", "r_rejected", "shape"]),
    ("lib.preference.dpo_loss", "rank", (T1, T2, T1, T1), {}, ["shape"]),
    ("lib.preference.dpo_loss", "probability", (T1, T1, T1, T1), {"label_smoothing": 1.5},
     ["label_smoothing"]),
    ("lib.quantization.int8_scale", "option", (T2,), {"granularity": "block"},
     ["granularity", "block"]),
    ("lib.quantization.quantize_int8", "option", (T2,), {"granularity": "block"},
     ["granularity", "block"]),
    ("lib.quantization.int8_scale", "rank", (T1,), {}, ["w", "shape"]),
    ("lib.quantization.int8_linear", "rank", (T2, torch.ones(4, dtype=torch.int8),
                                              torch.ones(4)), {}, ["q", "shape"]),
    ("lib.rl.gather_logprobs", "rank", (T1, torch.zeros(4, dtype=torch.long)), {},
     ["logits", "shape"]),
    ("lib.rl.masked_sum", "mask", (T2, torch.ones(3, 4)), {}, ["mask", "shape"]),
    ("lib.rl.masked_mean", "mask", (T2, torch.ones(3, 4)), {}, ["mask", "shape"]),
    ("lib.rl.group_advantages", "option", (torch.ones(4), 2), {"scale": "global-ish"},
     ["scale", "global-ish"]),
    ("lib.rl.group_advantages", "rank", (T2, 2), {}, ["rewards", "shape"]),
    ("lib.rl.kl_k3", "rank", (T1, T2), {}, ["logp", "ref_logp", "shape"]),
    ("lib.rl.clipped_surrogate", "probability", (T2, T2, torch.ones(2)), {"clip_eps": -0.2},
     ["clip_eps"]),
    ("lib.rl.ppo_clip_loss", "mask", (T2, T2, torch.ones(2), torch.ones(3, 4)), {},
     ["mask", "shape"]),
    ("lib.rl.grpo_loss", "mask", (T2, T2, None, torch.ones(2), torch.ones(3, 4)), {},
     ["mask", "shape"]),
    ("lib.sampling.top_k_filter", "rank", (torch.tensor(1.0), 1), {}, ["logits", "shape"]),
    ("lib.sampling.top_p_filter", "probability", (T2, 1.5), {}, ["p"]),
    ("lib.sampling.min_p_filter", "probability", (T2, -0.5), {}, ["min_p"]),
    ("lib.sampling.filter_logits", "probability", (T2,), {"top_p": 2.0}, ["top_p"]),
    ("lib.sampling.sample", "probability", (T2,), {"min_p": 1.5}, ["min_p"]),
    ("lib.sampling.typical_filter", "probability", (T2, 1.5), {}, ["tau"]),
    ("lib.attention.sdpa.scaled_dot_product_attention", "rank", (T1, T1, T1), {},
     ["q", "shape"]),
    ("lib.attention.sdpa.scaled_dot_product_attention", "mask",
     (Q, Q, Q), {"mask": torch.ones(5, 5, dtype=torch.bool)}, ["mask", "shape"]),
    ("lib.attention.sdpa.scaled_dot_product_attention", "probability",
     (Q, Q, Q), {"dropout_p": 1.0}, ["dropout_p"]),
    ("lib.attention.sdpa.attention_probs", "mask",
     (Q, Q), {"mask": torch.ones(2, 2, 5, 3, dtype=torch.bool)}, ["mask", "shape"]),
    ("lib.attention.sdpa.masked_scores", "mask",
     (torch.ones(1, 2, 3, 3), torch.ones(4, 3, dtype=torch.bool), False), {},
     ["mask", "shape"]),
    ("lib.attention.sdpa.safe_softmax", "rank", (torch.tensor(1.0),), {}, ["scores", "shape"]),
    ("lib.attention.blocked.blocked_attention", "rank", (T1, T1, T1), {}, ["q", "shape"]),
    ("lib.attention.blocked.blocked_attention", "mask",
     (Q, Q, Q), {"mask": torch.ones(5, 5, dtype=torch.bool)}, ["mask", "shape"]),
    ("lib.attention.blocked.live_tiles", "rank", (torch.ones(4, dtype=torch.bool), 2), {},
     ["mask", "shape"]),
    ("lib.attention.flash.flash_attention", "rank", (T1, T1, T1), {}, ["q"]),
    ("lib.attention.mha.split_heads", "rank", (T2, 2), {}, ["x", "shape"]),
    ("lib.attention.mha.merge_heads", "rank", (T3,), {}, ["x", "shape"]),
    ("lib.attention.mha.multi_head_attention", "rank",
     (T2, torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4), 2), {},
     ["x", "shape"]),
    ("lib.attention.mha.multi_head_attention", "mask",
     (T3, torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4), 2),
     {"mask": torch.ones(5, 5, dtype=torch.bool)}, ["mask", "shape"]),
    ("lib.attention.masks.padding_mask", "rank", (T2.long(), 4), {}, ["lengths", "shape"]),
    ("lib.attention.positions.apply_rope", "rank", (T1,), {}, ["x", "shape"]),
    ("lib.rl.gae", "mask", (torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 4, dtype=torch.bool)),
     {}, ["mask", "shape", "rewards"]),
    ("lib.rl.kl_penalized_rewards", "mask",
     (torch.ones(2), torch.ones(2, 3), torch.ones(2, 3), torch.ones(3, 3, dtype=torch.bool), 0.1),
     {}, ["mask", "shape", "logp"]),
    ("lib.rl.value_loss", "mask", (torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3),
                                   torch.ones(2, 4, dtype=torch.bool)), {}, ["mask", "shape"]),
    ("lib.rl.masked_whiten", "mask", (torch.ones(2, 3), torch.ones(3, 2, dtype=torch.bool)), {},
     ["mask", "shape"]),
    ("lib.sampling.speculative_residual", "rank", (torch.tensor(0.5), torch.tensor(0.5)), {},
     ["p", "shape"]),
    ("lib.sampling.speculative_step", "rank", (torch.ones(4), torch.ones(1, 4), torch.tensor([0])),
     {}, ["p_target", "shape"]),
    ("lib.sampling.speculative_generate", "rank",
     (lambda ids: P24, lambda ids: P24, torch.zeros(1, 2, dtype=torch.long), 2, 1), {},
     ["prompt", "shape"]),
    ("lib.backprop.batchnorm_forward", "rank", (np.ones((2, 3, 4)), np.ones(4), np.zeros(4)), {},
     ["x", "shape"]),
    ("lib.attention.blocked.blocked_attention_backward", "rank", (T1, T1, T1, T1, T1, T1), {},
     ["q", "shape"]),
    ("lib.attention.kv_cache.causal_self_attention", "rank",
     (T2, torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4), torch.ones(4, 4), 2), {},
     ["x", "shape"]),
    ("lib.model.rmsnorm", "rank", (T2, torch.ones(3)), {}, ["weight", "shape"]),
    ("lib.model.swiglu", "rank", (T2, torch.ones(6, 4), torch.ones(6, 4), torch.ones(6, 4)), {},
     ["w2", "shape"]),
    ("lib.model.get_batch", "rank", (T2, 2, 2), {}, ["data", "shape"]),
    ("lib.optim.AdamW", "probability", ([torch.nn.Parameter(T1)],), {"betas": (0.9, 1.5)},
     ["betas"]),
    ("lib.optim.SGD", "probability", ([torch.nn.Parameter(T1)],), {"momentum": 1.5},
     ["momentum"]),
    ("lib.optim.clip_grad_norm", "probability", ([torch.nn.Parameter(T1)], -1.0), {},
     ["max_norm"]),
]

NOT_APPLICABLE = {
    "lib.numerics.sigmoid": "elementwise on any shape, no option or probability argument",
    "lib.numerics.log_sigmoid": "elementwise on any shape, no option or probability argument",
    "lib.backprop.numerical_gradient": "any shape; takes a closure",
    "lib.backprop.init_mlp": "sizes only",
    "lib.backprop.NormCache": "a record of forward results, built by lib itself",
    "lib.backprop.layernorm_backward": "takes the cache its forward made",
    "lib.backprop.rmsnorm_backward": "takes the cache its forward made",
    "lib.backprop.batchnorm_backward": "takes the cache its forward made",
    "lib.attention.masks.sliding_window_mask": "sizes only (window >= 1 is checked)",
    "lib.bpe.split_chunks": "text in, no arrays",
    "lib.bpe.pair_counts": "counts of token tuples, no arrays",
    "lib.bpe.merge_pair": "token ids, no arrays",
    "lib.bpe.BPETokenizer": "merge table, no arrays",
    "lib.bpe.train_bpe": "text and a size, no arrays",
    "lib.bpe.train_bpe_naive": "text and a size, no arrays",
    "lib.lora.lora_parameter_count": "sizes only",
    "lib.lora.LoRALinear": "an nn.Module wrapping nn.Linear",
    "lib.patterns.fit_logistic_regression": "checked through logistic_loss_and_grad",
    "lib.patterns.kmeans_plus_plus": "checked through kmeans",
    "lib.quantization.dequantize_int8": "any shapes that broadcast (q and its scale)",
    "lib.sampling.beam_search": "takes a step function, no arrays",
    "lib.attention.flash.FlashAttentionFunction": "autograd Function behind flash_attention",
    "lib.attention.flash_attention": "imports lib.attention.flash on first call; audited there",
    "lib.attention.kv_cache.KVCache": "a buffer built from sizes",
    "lib.attention.kv_cache.kv_cache_bytes": "sizes only",
    "lib.attention.kv_cache.decode_step": "checked through causal_self_attention",
    "lib.attention.mha.multi_head_attention_backward": "checked through multi_head_attention",
    "lib.attention.masks.causal_mask": "sizes only",
    "lib.attention.positions.sinusoidal_positions": "sizes only",
    "lib.attention.positions.alibi_slopes": "sizes only",
    "lib.attention.positions.alibi_bias": "sizes only",
    "lib.attention.positions.rope_angles": "positions of any shape, by design",
    "lib.divergence.gaussian_kl": "elementwise; its arguments broadcast by design",
    "lib.model.silu": "elementwise on any shape",
    "lib.model.Linear": "an nn.Module built from sizes",
    "lib.model.Embedding": "an nn.Module built from sizes; rejects float ids",
    "lib.model.RMSNorm": "an nn.Module; checked through rmsnorm",
    "lib.model.SwiGLU": "an nn.Module; checked through swiglu",
    "lib.model.CausalSelfAttention": "an nn.Module; checked through apply_rope and sdpa",
    "lib.model.Block": "an nn.Module; checked through its parts",
    "lib.model.TinyLM": "an nn.Module built from sizes; forward checks ids' rank",
    "lib.optim.cosine_lr": "scalars only; its bounds are tested in test_lib_optim.py",
    "lib.optim.save_checkpoint": "a path and modules, no arrays",
    "lib.optim.load_checkpoint": "a path and modules, no arrays",
}

def _id(case) -> str:
    return f"{case[0].removeprefix('lib.')}-{case[1]}"


def test_every_public_function_is_audited():
    audited = {c[0] for c in CASES} | set(NOT_APPLICABLE)
    unaudited = sorted(set(public_functions()) - audited)
    assert not unaudited, f"add these to CASES or NOT_APPLICABLE: {unaudited}"
    stale = sorted(audited - set(public_functions()))
    assert not stale, f"no longer in lib: {stale}"


def test_every_kind_of_bad_input_is_covered():
    assert {c[1] for c in CASES} == {"rank", "mask", "option", "probability"}


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_raises_value_error_naming_argument_and_shape(case):
    path, kind, args, kwargs, words = case
    with pytest.raises(ValueError) as caught:
        call(path, *args, **kwargs)
    message = str(caught.value)
    absent = [w for w in words if w not in message]
    assert not absent, f"{path}: message {message!r} lacks {absent}"
