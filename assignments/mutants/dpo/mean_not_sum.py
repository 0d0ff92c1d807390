# mutant: token log-probs averaged over the response instead of summed
# replaces: response_logprobs
# fails: test_response_logprobs
def response_logprobs(logits, input_ids, response_mask):
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    token_logp = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = response_mask[:, 1:].to(token_logp.dtype)
    return (token_logp * mask).sum(dim=1) / mask.sum(dim=1)
