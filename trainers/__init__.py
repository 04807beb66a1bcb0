"""How to train: data, formatting, model, loop, checkpoints."""
