"""The classic ladder from the Hands-On ML RL chapter: hand-written and searched policies,
REINFORCE, Markov chains and MDPs with value iteration, and tabular Q-learning."""
