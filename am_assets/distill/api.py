"""distill's public surface: the retry tag the automation sensor and the runner read.
Everything else in am_assets/distill/ is internal (tests/test_layers.py)."""

from am_assets.distill.assets import RETRY_TAG

__all__ = ["RETRY_TAG"]
