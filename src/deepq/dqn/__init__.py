"""The DQN family: the pure targets and loss, the learner that owns its state and jitted update, the
networks, replay, exploration, and the training loop that ties them together (``loop.py``)."""
