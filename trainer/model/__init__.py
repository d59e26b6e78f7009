"""The recipes (seed and ours) and the Keras training loop."""
