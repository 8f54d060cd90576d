"""pass@k: the unbiased estimator of Chen et al. 2021 (Codex paper), and its benchmark averages."""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes.

    1 - C(n-c, k) / C(n, k), computed as a product so large n does not overflow (the paper's numpy form).
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n} c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got n={n} k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def report_ks(samples: int) -> list[int]:
    """The k values worth reporting for `samples` draws per item: 1, powers of two, and `samples`."""
    ks = {1, samples}
    k = 2
    while k < samples:
        ks.add(k)
        k *= 2
    return sorted(ks)


def mean_pass_at_k(counts: list[tuple[int, int]], k: int) -> float | None:
    """Benchmark pass@k: the mean over items of per-item pass@k; items with n < k are skipped."""
    vals = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return float(np.mean(vals)) if vals else None
