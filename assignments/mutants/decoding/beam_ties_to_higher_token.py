# mutant: beam search breaks ties in summed log-prob towards the higher row and token id, so a tie at the beam's edge keeps the wrong prefix
# replaces: beam
# fails: test_beam
def beam_search(step_fn, bos_id, eos_id, beam_size, max_len, length_penalty=1.0):
    live = [([bos_id], 0.0)]
    finished = []
    while live:
        seqs = torch.tensor([s for s, _ in live], dtype=torch.long)
        logprobs = step_fn(seqs).double()
        totals = torch.tensor([lp for _, lp in live], dtype=torch.float64)[:, None] + logprobs
        flat_totals = totals.flatten()
        reversed_order = torch.argsort(flat_totals.flip(0), descending=True, stable=True)
        order = flat_totals.numel() - 1 - reversed_order
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
    scored = [(seq, lp / (len(seq) - 1) ** length_penalty) for seq, lp in finished]
    return max(scored, key=lambda item: item[1])
