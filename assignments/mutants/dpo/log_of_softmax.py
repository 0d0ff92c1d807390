# mutant: token log-probs as log(softmax(logits)), which is -inf once a probability underflows
# replaces: response_logprobs
# fails: test_response_logprobs
def response_logprobs(logits, input_ids, response_mask):
    logp = torch.log(torch.softmax(logits[:, :-1], dim=-1))
    token_logp = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logp * response_mask[:, 1:].to(token_logp.dtype)).sum(dim=1)
