"""difficulty's public surface: the scored-sample rules and teacher order the mix selection reuses.
Everything else in am_assets/difficulty/ is internal (tests/test_layers.py)."""

from am_assets.difficulty.assets import difficulty_settings_hash
from am_assets.difficulty.logic import (SCORED_STATUSES, pass_rate_column, scored_frame, teachers_from_config,
                                        threshold_expr)

__all__ = ["SCORED_STATUSES", "difficulty_settings_hash", "pass_rate_column", "scored_frame",
           "teachers_from_config", "threshold_expr"]
