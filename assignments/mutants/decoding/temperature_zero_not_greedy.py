# mutant: temperature 0 is not special-cased, so the logits are divided by zero instead of taking the argmax
# replaces: sampling
# fails: test_sample
def sampling_probs(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)


def sample(logits, temperature, top_k=None, top_p=None, generator=None):
    probs = sampling_probs(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)
    return ids.reshape(logits.shape[:-1])
