# mutant: temperature applied to the probabilities after the softmax (then renormalized), which changes nothing
# replaces: sampling
# fails: test_temperature, test_sample
def sampling_probs(logits, temperature, top_k=None, top_p=None):
    z = logits
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    probs = torch.softmax(z, dim=-1) / temperature
    return probs / probs.sum(dim=-1, keepdim=True)


def sample(logits, temperature, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)
    return ids.reshape(logits.shape[:-1])
