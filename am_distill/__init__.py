"""The command-line layer: `am-distill` (cli.main) and the in-process runner (cli.runner)."""
