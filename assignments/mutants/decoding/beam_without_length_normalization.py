# mutant: beam search ranks finished hypotheses by the raw sum of log-probs, ignoring length_penalty
# replaces: beam
# fails: test_beam
def beam_search(step_fn, bos_id, eos_id, beam_size, max_len, length_penalty=1.0):
    live = [([bos_id], 0.0)]
    finished = []
    while live:
        seqs = torch.tensor([s for s, _ in live], dtype=torch.long)
        logprobs = step_fn(seqs).double()
        totals = torch.tensor([lp for _, lp in live], dtype=torch.float64)[:, None] + logprobs
        order = torch.argsort(totals.flatten(), descending=True, stable=True)
        next_live = []
        for flat in order.tolist():
            row, token = divmod(flat, totals.shape[1])
            seq, lp = live[row][0] + [token], totals[row, token].item()
            if lp == NEG_INF:
                break
            if token == eos_id or len(seq) == max_len:
                finished.append((seq, lp))
            else:
                next_live.append((seq, lp))
            if len(next_live) == beam_size:
                break
        live = next_live
    return max(finished, key=lambda item: item[1])
