"""The training loop every family runs (checkpoints, seeds, dev selection) and the distillation
losses.
"""
