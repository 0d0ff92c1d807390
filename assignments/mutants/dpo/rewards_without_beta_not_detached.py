# mutant: implicit rewards logged as policy - ref (no beta) and not detached
# replaces: dpo_loss
# fails: test_dpo_rewards
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    z = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    loss = -F.logsigmoid(beta * z).mean()
    return loss, policy_chosen - ref_chosen, policy_rejected - ref_rejected
