"""Pure dedup logic: union-find with frozen clusters, representative choice, shard hashing.

Work happens at the level of *texts* (unique normalized question = unique `query_id`): every row of
the same text is in the same cluster. Rows are (source, query_id).

Stability: clusters recorded in the previous state are frozen. A new text may join one existing
cluster (its strongest link) or form a new cluster with other new texts, but two existing clusters
are never merged and an existing representative row keeps its role while it exists.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl

from resources.config import shard_key


def stable_shard(query_id: str, n: int) -> str:
    """shard = blake2b(query_id) mod n, as "sNN": the same in every process and Python version."""
    h = int.from_bytes(hashlib.blake2b(query_id.encode(), digest_size=8).digest(), "big")
    return shard_key(h % n)


def shard_column(query_ids: pl.Series, n: int) -> pl.Series:
    return pl.Series("shard", [stable_shard(q, n) for q in query_ids.to_list()], dtype=pl.String)


class UnionFind:
    """Union-find over 0..n-1; a component may carry one anchor (an existing cluster id).

    `union` refuses to join two components anchored to different clusters, so existing clusters
    never merge. Feed edges strongest first and each new node joins its best-linked cluster.
    """

    def __init__(self, n: int, anchors: list[str | None] | None = None):
        self.parent = np.arange(n, dtype=np.int64)
        self.anchor: list[str | None] = list(anchors) if anchors is not None else [None] * n

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return int(root)

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        aa, ab = self.anchor[ra], self.anchor[rb]
        if aa is not None and ab is not None and aa != ab:
            return False
        if aa is None and ab is not None:
            ra, rb = rb, ra  # keep the anchored root
        self.parent[rb] = ra
        self.anchor[ra] = aa if aa is not None else ab
        return True

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def cluster_texts(texts: pl.DataFrame, edges: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pl.DataFrame:
    """Cluster ids for texts.

    `texts`: columns `query_id` and `cluster_id` (the previous cluster, null for new texts), row i =
    node i. `edges`: arrays (a, b, similarity) between nodes; at least one end should be new (old-old
    edges cannot change anything). Returns `texts` with `cluster_id` filled and `new_cluster` (bool).
    New clusters are named "c" + the smallest query_id in them (deterministic, independent of order).
    Only new texts and edge ends are visited: an old text no edge reaches keeps its cluster, so adding
    1% of the texts costs 1% of a first run.
    """
    prev = texts["cluster_id"].cast(pl.String).clone()
    a, b, sim = edges
    nodes = np.unique(np.concatenate([np.flatnonzero(prev.is_null().to_numpy()), a, b]).astype(np.int64))
    anchors = prev.gather(nodes).to_list()
    qids = texts["query_id"].gather(nodes).to_list()
    uf = UnionFind(len(nodes), anchors)
    # old texts of the same previous cluster are one component from the start
    first_of: dict[str, int] = {}
    for i, c in enumerate(anchors):
        if c is not None:
            if c in first_of:
                uf.parent[i] = first_of[c]
            else:
                first_of[c] = i
    order = np.lexsort((b, a, -sim))  # strongest first, then deterministic
    la, lb = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    for k in order:
        uf.union(int(la[k]), int(lb[k]))
    roots = uf.roots().tolist()
    smallest: dict[int, str] = {}
    for i, r in enumerate(roots):
        if uf.anchor[r] is None and (r not in smallest or qids[i] < smallest[r]):
            smallest[r] = qids[i]
    wanted = {"c" + q.lstrip("q") for q in smallest.values()}
    # live ids a new name could collide with: the wanted names and their "_" suffixed forms
    live = prev.drop_nulls()
    taken = set(live.filter(live.str.strip_chars_end("_").is_in(list(wanted))).to_list())
    names: dict[int, str] = {}
    for r in sorted(smallest, key=lambda r: smallest[r]):
        name = "c" + smallest[r].lstrip("q")
        while name in taken:  # a removed text that comes back must not reuse a live cluster's id
            name += "_"
        taken.add(name)
        names[r] = name
    out = prev.scatter(nodes, [uf.anchor[r] or names[r] for r in roots]) if len(nodes) else prev
    new = np.zeros(texts.height, dtype=bool)
    new[nodes] = [uf.anchor[r] is None for r in roots]
    return texts.with_columns(cluster_id=out, new_cluster=pl.Series(new, dtype=pl.Boolean))


def has_gold() -> pl.Expr:
    """A row carries a reference answer or test cases (it can be verified)."""
    return (pl.col("reference_answer").fill_null("").str.len_chars() > 0) | (
        pl.col("test_cases").fill_null("").str.len_chars() > 0)


def choose_representatives(rows: pl.DataFrame, priorities: dict[str, int]) -> pl.DataFrame:
    """Mark one `representative` row per `cluster_id` and fill `duplicate_of`.

    `rows`: source, query_id, source_row, cluster_id, reference_answer, test_cases and `prev_rep`
    (bool: this row was the representative before). A cluster keeps its previous representative when
    that row is still present; otherwise the best row wins: has a reference answer or tests, then
    higher source priority, then source name, query_id and source_row (deterministic tie-break).
    """
    ranked = rows.with_columns(
        _gold=has_gold(),
        _prio=pl.col("source").replace_strict(priorities, default=0, return_dtype=pl.Int64),
        _prev=pl.col("prev_rep").fill_null(False),
    ).sort(["cluster_id", "_prev", "_gold", "_prio", "source", "query_id", "source_row"],
           descending=[False, True, True, True, False, False, False])
    first = pl.int_range(pl.len()).over("cluster_id") == 0
    rep_qid = pl.col("query_id").first().over("cluster_id")
    return ranked.with_columns(representative=first).with_columns(
        duplicate_of=pl.when(pl.col("representative")).then(pl.lit(None, dtype=pl.String)).otherwise(rep_qid),
    ).drop("_gold", "_prio", "_prev")


def dedup_summary(state: pl.DataFrame) -> dict:
    """Cluster counts and duplicates removed per source (for metadata)."""
    sizes = state.group_by("cluster_id").len()
    dups = state.filter(~pl.col("representative")).group_by("source").len().sort("source")
    return {
        "rows": state.height,
        "clusters": sizes.height,
        "clusters_with_duplicates": sizes.filter(pl.col("len") > 1).height,
        "largest_cluster": int(sizes["len"].max() or 0),
        "representatives": int(state["representative"].sum()),
        "duplicates_removed_by_source": {s: int(n) for s, n in dups.iter_rows()},
    }


def contamination_summary(state: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Rows flagged per benchmark and method: {benchmark: {method: rows}}."""
    out: dict[str, dict[str, int]] = {}
    for ev in state["contaminated_by"].drop_nulls().to_list():
        seen = {(e["benchmark"], e["method"]) for e in json.loads(ev)}
        for bench, method in seen:
            out.setdefault(bench, {}).setdefault(method, 0)
            out[bench][method] += 1
    return {b: dict(sorted(m.items())) for b, m in sorted(out.items())}
