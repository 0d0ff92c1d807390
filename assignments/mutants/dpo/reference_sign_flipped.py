# mutant: sign error, the reference log-ratio is added instead of subtracted
# replaces: dpo_loss
# fails: test_dpo_loss, test_dpo_gradient
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    z = (policy_chosen - policy_rejected) + (ref_chosen - ref_rejected)
    loss = -F.logsigmoid(beta * z).mean()
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return loss, chosen_rewards, rejected_rewards
