# mutant: softmax backward through the diagonal of the Jacobian only, g * p * (1 - p)
# replaces: softmax_backward
# fails: test_softmax_backward
def softmax_backward(p, grad_p):
    return grad_p * p * (1.0 - p)
