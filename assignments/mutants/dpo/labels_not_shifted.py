# mutant: labels not shifted: the logits at position t are scored against the token at t
# replaces: response_logprobs
# fails: test_response_logprobs
def response_logprobs(logits, input_ids, response_mask):
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    return (token_logp * response_mask.to(token_logp.dtype)).sum(dim=1)
