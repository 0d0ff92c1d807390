"""Decoding: logit filters, sampling and beam search (torch).

A language model gives, at each step, logits ``z [..., V]`` over a vocabulary of ``V``
tokens. Decoding turns them into a token. Every strategy here is one of two moves:

* **reshape the distribution**: divide by a temperature ``T`` (``softmax(z / T)``), or
  *filter* it by setting the logits of removed tokens to ``-inf`` so that they get
  probability exactly 0 after the softmax renormalizes the rest;
* **choose**: take the argmax (greedy), draw from the distribution, or keep several
  partial sequences and extend the best of them (beam search).

The filters act on the last axis and keep any leading shape, so one call filters a whole
batch. Ties between equal logits are always broken by index (lower index first), which
makes every filter deterministic and permutation-equivariant up to those ties.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lib._checks import check_in_range, check_min_ndim, check_ndim, shape_of

NEG_INF = float("-inf")


def _check_logits(logits: torch.Tensor) -> None:
    check_min_ndim("logits", logits, 1)
    if not torch.is_floating_point(logits):
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype} "
                         f"and shape {shape_of(logits)}")


def _keep_from_sorted(keep_sorted: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Scatter a keep mask given in sorted order back to vocabulary order."""
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def _sort_descending(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort the last axis from most to least likely; equal logits keep index order."""
    return torch.sort(logits, dim=-1, descending=True, stable=True)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of the last axis and set the others to ``-inf``.

    Shapes: ``logits [..., V]`` -> ``[..., V]``, same dtype. Exactly ``min(k, V)`` entries
    survive; among equal logits the lower index wins, so ``k = 1`` keeps only the token
    that ``argmax`` returns and sampling becomes greedy decoding.

    Raises ``ValueError`` if ``k < 1`` or ``logits`` is not a float tensor.
    """
    _check_logits(logits)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r} (logits shape {shape_of(logits)})")
    k = min(int(k), logits.shape[-1])
    _, order = _sort_descending(logits)                          # [..., V]
    rank = torch.arange(logits.shape[-1], device=logits.device)  # [V]
    keep_sorted = (rank < k).expand_as(order)                    # [..., V]
    keep = _keep_from_sorted(keep_sorted, order)
    return logits.masked_fill(~keep, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose mass is ``>= p``.

    With the probabilities sorted in decreasing order, ``pi_(1) >= pi_(2) >= ...``, token
    ``(j)`` is kept iff the mass *before* it is still short of ``p``:

    .. math:: \\sum_{i<j} \\pi_{(i)} < p .

    So the token whose probability makes the running sum cross ``p`` is kept (dropping it
    would leave less than ``p``), and the most likely token is always kept (the mass before
    it is 0). The cumulative sum is taken in float64, and ``p = 1`` keeps every token
    (rounding could otherwise make the running sum reach 1 before the last token).
    Tokens whose logit is already ``-inf`` stay removed.

    Shapes: ``logits [..., V]`` -> ``[..., V]``, same dtype.
    Raises ``ValueError`` if ``p`` is outside ``(0, 1]``.
    """
    _check_logits(logits)
    check_in_range("p", p, 0.0, 1.0, low_open=True)
    if p == 1.0:
        return logits.clone()
    sorted_logits, order = _sort_descending(logits)              # [..., V]
    probs = torch.softmax(sorted_logits.double(), dim=-1)        # [..., V] float64
    mass_before = torch.cumsum(probs, dim=-1) - probs            # [..., V]
    keep = _keep_from_sorted(mass_before < p, order)
    return logits.masked_fill(~keep, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least ``min_p`` times the top probability.

    ``pi_i >= min_p * pi_max``  is the same as  ``z_i - z_max >= log(min_p)``, so the
    filter needs no softmax. The threshold scales with the model's confidence: a peaked
    distribution keeps few tokens, a flat one keeps many. ``min_p = 0`` keeps everything;
    the most likely token is always kept.

    Shapes: ``logits [..., V]`` -> ``[..., V]``, same dtype.
    Raises ``ValueError`` if ``min_p`` is outside ``[0, 1]``.
    """
    _check_logits(logits)
    check_in_range("min_p", min_p, 0.0, 1.0)
    if min_p == 0.0:
        return logits.clone()
    z_max = logits.max(dim=-1, keepdim=True).values              # [..., 1]
    keep = (logits - z_max) >= math.log(min_p)                   # [..., V]
    return logits.masked_fill(~keep, NEG_INF)


def typical_filter(logits: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Locally typical filter (Meister et al., 2023): keep the tokens closest to the entropy.

    With ``pi = softmax(logits)`` and entropy ``H = -sum_i pi_i log pi_i``, token ``i`` is
    scored by how far its surprisal is from the expected surprisal,
    ``d_i = |-log pi_i - H|``. Sorting by increasing ``d`` (ties by index), token ``(j)``
    is kept iff the mass of the more typical tokens before it is still short of ``tau``:

    .. math:: \sum_{i<j} \pi_{(i)} < \tau ,

    the same crossing rule as :func:`top_p_filter`, with typicality replacing probability
    as the order. So the most typical token is always kept, the kept mass is ``>= tau``,
    and, unlike top-p, a very likely token can be removed when the distribution is flat
    elsewhere (its surprisal is far below ``H``). Computed in float64; ``tau = 1`` keeps
    every token; tokens whose logit is already ``-inf`` stay removed.

    Shapes: ``logits [..., V]`` -> ``[..., V]``, same dtype.
    Raises ``ValueError`` if ``tau`` is outside ``(0, 1]``.
    """
    _check_logits(logits)
    check_in_range("tau", tau, 0.0, 1.0, low_open=True)
    if tau == 1.0:
        return logits.clone()
    logp = torch.log_softmax(logits.double(), dim=-1)                # [..., V] float64
    probs = logp.exp()                                               # [..., V]
    plogp = torch.where(probs > 0, probs * logp, torch.zeros_like(probs))
    entropy = -plogp.sum(dim=-1, keepdim=True)                       # [..., 1]
    deviation = (-logp - entropy).abs()                              # [..., V], inf if pi = 0
    sorted_dev, order = torch.sort(deviation, dim=-1, stable=True)   # [..., V] most typical first
    sorted_probs = probs.gather(-1, order)                           # [..., V]
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # [..., V]
    keep_sorted = (mass_before < tau) & torch.isfinite(sorted_dev)
    keep = _keep_from_sorted(keep_sorted, order)
    return logits.masked_fill(~keep, NEG_INF)


def _check_filter_args(top_k: int | None, top_p: float | None, min_p: float | None) -> None:
    """The filter arguments are checked even when greedy decoding will ignore them."""
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k!r}")
    if top_p is not None:
        check_in_range("top_p", top_p, 0.0, 1.0, low_open=True)
    if min_p is not None:
        check_in_range("min_p", min_p, 0.0, 1.0)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The logits that :func:`sample` draws from, for ``temperature > 0``.

    Order: divide by the temperature first, then apply top-k, top-p and min-p, each to the
    output of the previous one (so top-p measures mass under the *tempered*, already
    top-k-filtered distribution). ``softmax`` of the result is the sampling distribution.

    Shapes: ``logits [..., V]`` -> ``[..., V]``.
    Raises ``ValueError`` if ``temperature <= 0`` (greedy decoding has no distribution) or
    a filter argument is out of range.
    """
    _check_logits(logits)
    _check_filter_args(top_k, top_p, min_p)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here, got {temperature!r}")
    out = logits / temperature
    if top_k is not None:
        out = top_k_filter(out, top_k)
    if top_p is not None:
        out = top_p_filter(out, top_p)
    if min_p is not None:
        out = min_p_filter(out, min_p)
    return out


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, min_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row of ``logits [..., V]``; returns a LongTensor ``[...]``.

    ``temperature = 0`` is greedy decoding (``argmax``, first index among ties); the filters
    are still validated but not applied, since none of them ever removes the argmax. Otherwise the draw follows
    ``softmax(filter_logits(logits, temperature, top_k, top_p, min_p))``. Passing a seeded
    ``torch.Generator`` makes the draws reproducible.

    Raises ``ValueError`` if ``temperature < 0``, ``top_k < 1``, ``top_p`` is outside
    ``(0, 1]`` or ``min_p`` outside ``[0, 1]``.
    """
    _check_logits(logits)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    _check_filter_args(top_k, top_p, min_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = filter_logits(logits, temperature, top_k, top_p, min_p)  # [..., V]
    probs = torch.softmax(filtered.float(), dim=-1)                    # [..., V]
    flat = probs.reshape(-1, probs.shape[-1])                          # [N, V]
    ids = torch.multinomial(flat, num_samples=1, generator=generator)  # [N, 1]
    return ids.reshape(logits.shape[:-1])


StepFn = Callable[[torch.Tensor], torch.Tensor]


def _length_normalized(sum_logprob: float, n_generated: int, length_penalty: float) -> float:
    """``sum_logprob / n_generated ** length_penalty`` (``length_penalty = 0``: the raw sum)."""
    return sum_logprob / n_generated ** length_penalty


def _check_step_output(logprobs: torch.Tensor, n: int) -> None:
    if logprobs.ndim != 2 or logprobs.shape[0] != n:
        raise ValueError(f"step_fn must return log-probs of shape [n={n}, V], "
                         f"got shape {shape_of(logprobs)}")


Beam = tuple[list[int], float]                  # (token ids starting with bos, summed log-prob)


def _beam_step(live: list[Beam], logprobs: torch.Tensor, eos_id: int, beam_size: int,
               max_len: int) -> tuple[list[Beam], list[Beam]]:
    """Extend every live beam by every token; return ``(next_live, newly_finished)``.

    ``logprobs [n, V]`` scores the next token of each of the ``n`` live beams. Candidates
    are visited from the best summed log-prob down (ties: lower row, then lower token id).
    Each row has one eos, so the best ``2 * beam_size`` candidates always hold at least
    ``beam_size`` that do not end in eos: the ranking is never read further than that.
    """
    prefix = torch.tensor([lp for _, lp in live], dtype=torch.float64)    # [n]
    totals = prefix[:, None] + logprobs.detach().double().cpu()           # [n, V]
    order = torch.argsort(totals.flatten(), descending=True, stable=True)
    next_live, finished = [], []
    for flat_index in order[:2 * beam_size].tolist():
        row, token = divmod(flat_index, totals.shape[1])
        candidate = (live[row][0] + [token], totals[row, token].item())
        if candidate[1] == NEG_INF:
            break
        if token == eos_id or len(candidate[0]) == max_len:
            finished.append(candidate)
        else:
            next_live.append(candidate)
        if len(next_live) == beam_size:
            break
    return next_live, finished


def beam_search(step_fn: StepFn, bos_id: int, eos_id: int, beam_size: int, max_len: int,
                length_penalty: float = 1.0) -> tuple[list[int], float]:
    """Beam search with length normalization.

    ``step_fn(seqs)`` takes the live prefixes ``seqs [n, t]`` (a CPU LongTensor, each row
    starting with ``bos_id``; move it to the model's device inside ``step_fn``) and returns
    next-token log-probs ``[n, V]``. At every step each of the at most ``beam_size`` live
    prefixes is extended by every token; the ``beam_size`` best extensions by summed
    log-prob that do not end in ``eos_id`` stay live, and those that do end in ``eos_id``
    become finished hypotheses. A prefix that reaches ``max_len`` tokens (bos included) is
    finished as it is. The search runs until no live prefix is left, then returns the
    finished hypothesis with the best

    .. math:: \\text{score} = \\frac{\\sum_t \\log p(y_t \\mid y_{<t})}{|y|^{\\alpha}},

    where ``|y|`` counts the generated tokens (bos excluded, eos included) and ``alpha`` is
    ``length_penalty``. With ``alpha = 0`` the score is the raw sum, which is biased toward
    short hypotheses: extending a hypothesis never raises its score (every extra token adds
    a log-prob ``<= 0``). It does not always pick the shortest one: a longer hypothesis of
    likely tokens beats a short one whose tokens are unlikely. Cost: at most
    ``max_len - 1`` calls of ``step_fn`` on ``[<= beam_size, t]``.

    Returns ``(sequence, score)``: the ids as a list starting with ``bos_id``, and the score.
    Raises ``ValueError`` if ``beam_size < 1``, ``max_len < 2`` or ``step_fn`` returns a
    tensor that is not ``[n, V]``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size!r}")
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2 (bos plus one token), got {max_len!r}")
    live: list[Beam] = [([bos_id], 0.0)]
    finished: list[Beam] = []
    while live:
        seqs = torch.tensor([seq for seq, _ in live], dtype=torch.long)   # [n, t]
        logprobs = step_fn(seqs)                                          # [n, V]
        _check_step_output(logprobs, len(live))
        live, done = _beam_step(live, logprobs, eos_id, beam_size, max_len)
        finished += done
    scored = [(seq, _length_normalized(lp, len(seq) - 1, length_penalty)) for seq, lp in finished]
    return max(scored, key=lambda item: item[1])


# ---- Speculative sampling (Leviathan et al., 2023; Chen et al., 2023) ------------------

def _check_distributions(name_p: str, p: torch.Tensor, name_q: str, q: torch.Tensor) -> None:
    if shape_of(p) != shape_of(q):
        raise ValueError(f"{name_p} and {name_q} must have the same shape, got {name_p} "
                         f"{shape_of(p)} and {name_q} {shape_of(q)}")
    check_min_ndim(name_p, p, 1)
    if not torch.is_floating_point(p) or not torch.is_floating_point(q):
        raise ValueError(f"{name_p} and {name_q} must be floating-point probabilities, got "
                         f"{p.dtype} and {q.dtype}")


def speculative_residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The distribution to sample from after a draft token is rejected.

    ``norm(max(0, p - q))`` along the last axis: the part of the target ``p`` that the
    draft ``q`` under-covers. Where ``p == q`` exactly the residual has no mass (no draft
    token is ever rejected there), and ``p`` itself is returned.

    Args:
        p, q: ``[..., V]`` probability vectors (target and draft), same shape.

    Returns:
        ``[..., V]``, each row summing to 1.

    Example: ``p = [0.5, 0.5, 0]``, ``q = [0.8, 0.1, 0.1]`` -> ``[0, 1, 0]``.
    """
    _check_distributions("p", p, "q", q)
    excess = (p - q).clamp(min=0)                                     # [..., V]
    mass = excess.sum(dim=-1, keepdim=True)                           # [..., 1]
    return torch.where(mass > 0, excess / mass.clamp(min=torch.finfo(p.dtype).tiny), p)


def speculative_step(p_target: torch.Tensor, q_draft: torch.Tensor, draft_tokens: torch.Tensor,
                     generator: torch.Generator | None = None) -> list[int]:
    r"""One verification step of speculative sampling; returns 1 to K+1 token ids.

    The draft model proposed ``draft_tokens[i] ~ q_draft[i]`` for ``i < K``; the target
    model scored all ``K + 1`` positions in one forward pass (``p_target``). In order:

    * accept token ``x_i`` with probability ``min(1, p_i(x_i) / q_i(x_i))``;
    * at the first rejection, emit one token drawn from ``speculative_residual(p_i, q_i)``
      and stop;
    * if all ``K`` are accepted, emit one more token drawn from ``p_target[K]``.

    Why it is exact: the first emitted token is ``y`` with probability
    ``q(y) min(1, p(y)/q(y)) + (1 - \sum_x \min(p(x), q(x))) \cdot r(y)``
    ``= min(p(y), q(y)) + max(0, p(y) - q(y)) = p(y)``, and by induction every later one.

    Args:
        p_target: ``[K+1, V]`` target probabilities.
        q_draft: ``[K, V]`` draft probabilities.
        draft_tokens: ``[K]`` int, drawn from ``q_draft`` by the caller.
        generator: optional ``torch.Generator`` for the uniform draws and the resampling.

    Returns:
        A Python ``list[int]`` of the emitted tokens.
    """
    check_min_ndim("p_target", p_target, 2)
    if p_target.ndim != 2 or q_draft.ndim != 2 or draft_tokens.ndim != 1:
        raise ValueError(f"expected p_target [K+1, V], q_draft [K, V], draft_tokens [K], got "
                         f"{shape_of(p_target)}, {shape_of(q_draft)}, {shape_of(draft_tokens)}")
    K = q_draft.shape[0]
    if shape_of(p_target) != (K + 1, q_draft.shape[1]) or draft_tokens.shape[0] != K:
        raise ValueError(f"expected p_target [K+1, V], q_draft [K, V], draft_tokens [K], got "
                         f"{shape_of(p_target)}, {shape_of(q_draft)}, {shape_of(draft_tokens)}")
    emitted: list[int] = []
    for i in range(K):
        x = int(draft_tokens[i])
        p_x, q_x = float(p_target[i, x]), float(q_draft[i, x])
        if q_x <= 0:
            raise ValueError(f"draft_tokens[{i}] = {x} has draft probability 0: it cannot "
                             "have been drawn from q_draft")
        u = float(torch.rand((), dtype=torch.float64, generator=generator))
        if u < min(1.0, p_x / q_x):                                    # accept x_i
            emitted.append(x)
            continue
        residual = speculative_residual(p_target[i], q_draft[i])       # [V]
        emitted.append(int(torch.multinomial(residual.double(), 1, generator=generator)))
        return emitted                                                 # stop at the rejection
    emitted.append(int(torch.multinomial(p_target[K].double(), 1, generator=generator)))
    return emitted


ProbsFn = Callable[[torch.Tensor], torch.Tensor]


def _next_token_probs(name: str, probs_fn: ProbsFn, ids: list[int]) -> torch.Tensor:
    """``probs_fn`` on ``ids``, checked to be ``[T, V]`` with ``T = len(ids)``."""
    probs = probs_fn(torch.tensor(ids, dtype=torch.long))                # [T, V]
    if probs.ndim != 2 or probs.shape[0] != len(ids):
        raise ValueError(f"{name} must return probabilities of shape [T={len(ids)}, V], "
                         f"got shape {shape_of(probs)}")
    return probs


def speculative_generate(target_probs_fn: ProbsFn, draft_probs_fn: ProbsFn,
                         prompt: list[int] | torch.Tensor, max_new_tokens: int, k: int,
                         generator: torch.Generator | None = None,
                         stats: dict[str, list[int]] | None = None) -> list[int]:
    r"""Sample ``max_new_tokens`` tokens from the target model by speculative sampling.

    Each *verification step* (one call of the target) does:

    1. the draft proposes ``k`` tokens one at a time, ``x_i ~ q(. | prefix, x_{<i})``
       (``k`` calls of ``draft_probs_fn``);
    2. the target scores the prefix plus all ``k`` drafts in **one** call; its last
       ``k + 1`` rows are ``p_target [k+1, V]``;
    3. :func:`speculative_step` accepts a prefix of the drafts and emits 1 to ``k + 1``
       tokens, each distributed exactly as the target would sample it.

    Steps repeat until ``max_new_tokens`` tokens exist; the last step may emit a few more,
    which are dropped (a prefix of a target-distributed sequence is target-distributed).
    If every step accepts each draft independently with probability ``alpha``, a step
    emits on average :math:`(1 - \alpha^{k+1}) / (1 - \alpha)` tokens (Leviathan et
    al., 2023), so the target is called about that many times less often than by plain
    sampling, at the price of ``k`` draft calls per step.

    Both models are plain callables, so any causal model fits: ``fn(ids)`` takes a
    LongTensor ``ids [T]`` (the whole sequence so far; a model may cache the rows of a
    prefix it has already seen, as a KV cache does) and returns
    ``[T, V]`` probabilities (any float dtype), row ``t`` being the distribution of the
    token after ``ids[: t + 1]``. The target's probabilities are never altered: sampling
    with temperature or a filter means passing the already filtered distribution.

    Args:
        target_probs_fn, draft_probs_fn: the target and draft models, ``[T] -> [T, V]``.
        prompt: the ``T0 >= 1`` token ids to continue (a list or a 1-D tensor).
        max_new_tokens: how many tokens to return, ``>= 1``.
        k: draft tokens proposed per step, ``>= 1``.
        generator: optional ``torch.Generator`` for every draw (draft, accept, resample).
        stats: optional dict; if given, ``stats["accepted"]`` is set to the list of how
            many draft tokens each step accepted (``0`` to ``k``; the step emitted one
            more than that). Its length is the number of target calls.

    Returns:
        The ``max_new_tokens`` generated ids as a ``list[int]`` (the prompt excluded).

    Raises ``ValueError`` if ``k < 1``, ``max_new_tokens < 1``, ``prompt`` is not a
    non-empty 1-D sequence, or a model returns a tensor that is not ``[T, V]``.
    """
    if k < 1:
        raise ValueError(f"k (draft tokens per step) must be >= 1, got {k!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens!r}")
    prompt_ids = torch.as_tensor(prompt, dtype=torch.long)                # [T0]
    check_ndim("prompt", prompt_ids, 1)
    if prompt_ids.numel() == 0:
        raise ValueError("prompt must hold at least one token id, got shape (0,)")
    generated: list[int] = []
    accepted: list[int] = []
    while len(generated) < max_new_tokens:
        prefix = prompt_ids.tolist() + generated
        drafts: list[int] = []
        q_rows = []
        for _ in range(k):
            q = _next_token_probs("draft_probs_fn", draft_probs_fn, prefix + drafts)[-1]  # [V]
            drafts.append(int(torch.multinomial(q.double(), 1, generator=generator)))
            q_rows.append(q)
        p_target = _next_token_probs("target_probs_fn", target_probs_fn,
                                     prefix + drafts)[-(k + 1):]           # [k+1, V]
        emitted = speculative_step(p_target, torch.stack(q_rows), torch.tensor(drafts),
                                   generator=generator)                    # 1 to k+1 ids
        accepted.append(len(emitted) - 1)
        generated += emitted
    if stats is not None:
        stats["accepted"] = accepted
    return generated[:max_new_tokens]
