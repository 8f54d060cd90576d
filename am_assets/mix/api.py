"""mix's public surface: the export writer (`am-distill export`) and its settings hash.
Everything else in am_assets/mix/ is internal (tests/test_layers.py)."""

from am_assets.mix.assets import mix_settings_hash
from am_assets.mix.export import rows_from_table, write_exports

__all__ = ["mix_settings_hash", "rows_from_table", "write_exports"]
