# mutant: the decision uses probs > threshold, so a probability exactly at the threshold becomes a no
# replaces: predict_yes
# fails: test_predict_yes
def predict_yes(probs, threshold):
    return (probs > threshold).astype(int)
