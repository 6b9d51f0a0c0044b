"""rlhf-bench: PPO, GRPO and DPO on the same tasks under the same compute budget."""

__version__ = "0.1.0"
