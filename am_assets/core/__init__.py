"""Shared code below every stage: row schemas and text hashing (`schema`), partition definitions
(`partitions`), source data versions (`versions`), response parsing and answer helpers (`responses`,
`boxed`), lineage tracing (`lineage`), report rendering (`render`).

Stages import from here and from their own package; never from another stage's internals (a stage's
public surface, where another stage needs it, is its `api` module). `tests/test_layers.py` checks it.
"""
