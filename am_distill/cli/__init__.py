"""`am-distill`: the CLI and its runner. The only layer that uses `sensors` outside Dagster itself."""
