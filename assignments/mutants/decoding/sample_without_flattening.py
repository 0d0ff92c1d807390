# mutant: sample hands the probabilities to torch.multinomial without flattening the leading axes, so only 1-D and 2-D logits work
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
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
