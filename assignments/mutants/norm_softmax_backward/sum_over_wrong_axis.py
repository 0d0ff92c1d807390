# mutant: the inner product sum(g * p) taken over the batch axis (axis 0) instead of the class axis
# replaces: softmax_backward
# fails: test_softmax_backward
def softmax_backward(p, grad_p):
    inner = np.sum(grad_p * p, axis=0, keepdims=True)
    return p * (grad_p - inner)
