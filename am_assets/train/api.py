"""train's public surface: the model registry evaluate reads (which models to score).
Everything else in am_assets/train/ is internal (tests/test_layers.py)."""

from am_assets.train.registry import eval_models, read_registry

__all__ = ["eval_models", "read_registry"]
