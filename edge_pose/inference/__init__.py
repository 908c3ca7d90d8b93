"""Inference: TFLite runtime and delegates, MoveNet, crop regions, and the model catalog."""
