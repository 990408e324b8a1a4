"""Retrieval metrics over embeddings, with the similarity computed in chunks of queries.

Memory is O(chunk x N) rather than O(Q x N), so large query and candidate sets fit: with the
default chunk of 256 queries, 10^5 queries against 10^5 candidates hold a 100 MB similarity block
at a time. Each chunk's results are written into tensors allocated before the loop: collected in
a list, the small per-chunk results sat between the freed similarity blocks on glibc's heap
(blocks under its 32 MB mmap threshold: fewer than about 32k candidates), no freed block could be
reused, and the peak resident memory grew as Q x N after all (3 GB for 3 x 10^4 queries and
candidates; benchmarks/eval_scale.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medrep.data.reports import normalise_text

ArrayLike = np.ndarray | torch.Tensor


def _unit(x: ArrayLike) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    return F.normalize(t, dim=-1)


def topk_cosine(
    queries: ArrayLike, candidates: ArrayLike, k: int, chunk_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar candidates of every query.

    Returns:
        (scores [Q, k], indices [Q, k]) sorted by decreasing similarity; tied candidates come in
        an unspecified order (torch.topk's).
    """
    q, c = _unit(queries), _unit(candidates)
    k = min(k, c.shape[0])
    scores = torch.empty(q.shape[0], k)
    indices = torch.empty(q.shape[0], k, dtype=torch.long)
    for start in range(0, q.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        torch.topk(q[rows] @ c.T, k, dim=1, sorted=True, out=(scores[rows], indices[rows]))
    return scores.numpy(), indices.numpy()


def target_ranks(
    queries: ArrayLike,
    candidates: ArrayLike,
    targets: Sequence[int] | np.ndarray,
    chunk_size: int = 256,
) -> np.ndarray:
    """1-based rank of each query's target candidate (ties counted against the target).

    A target tied with k other candidates ranks k + 1 places lower than an untied one would,
    so identical embeddings never make a metric look better than it is.
    """
    q, c = _unit(queries), _unit(candidates)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    ranks = torch.empty(q.shape[0], dtype=torch.long)
    for start in range(0, q.shape[0], chunk_size):
        sim = q[start : start + chunk_size] @ c.T
        rows = torch.arange(sim.shape[0])
        target_sim = sim[rows, t[start : start + chunk_size]].unsqueeze(1)
        ranks[start : start + chunk_size] = (sim >= target_sim).sum(1)
    return ranks.numpy()


def recall_at_k(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Share of queries whose target ranks within the top k."""
    return {int(k): float(np.mean(ranks <= k)) for k in ks}


def paired_retrieval(
    image: ArrayLike, text: ArrayLike, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Image->text and text->image Recall@k and median rank for row-aligned pairs."""
    targets = np.arange(len(image))
    out: dict[str, float] = {}
    for name, q, c in (("i2t", image, text), ("t2i", text, image)):
        ranks = target_ranks(q, c, targets)
        out.update({f"{name}_R@{k}": v for k, v in recall_at_k(ranks, ks).items()})
        out[f"{name}_median_rank"] = float(np.median(ranks))
    return out


def precision_at_k(topk_indices: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-query precision of the first k retrieved candidates.

    Args:
        topk_indices: [Q, >=k] candidate indices in rank order.
        relevant: [Q, N] boolean relevance of every candidate to every query.
    """
    if topk_indices.shape[1] < k:
        raise ValueError(f"need at least {k} retrieved candidates, got {topk_indices.shape[1]}")
    hits = np.take_along_axis(np.asarray(relevant, dtype=bool), topk_indices[:, :k], axis=1)
    return hits.mean(axis=1)


def text_groups(texts: Sequence[str]) -> np.ndarray:
    """[N] integer group of every text; texts equal after `normalise_text` share a group."""
    _, inverse = np.unique([normalise_text(t) for t in texts], return_inverse=True)
    return inverse.astype(np.int64)


def grouped_target_ranks(
    queries: ArrayLike,
    candidates: ArrayLike,
    query_groups: Sequence[int] | np.ndarray,
    candidate_groups: Sequence[int] | np.ndarray,
    collapse_candidates: bool = False,
    chunk_size: int = 256,
) -> np.ndarray:
    """1-based rank of each query's best-ranked correct candidate, duplicates counted as one.

    A candidate is correct for a query when their groups are equal (for reports: the same text
    after normalisation), so retrieving any copy of the target's text is a hit. The rank is one
    plus the number of wrong candidates scoring at least as high as the best correct one (ties
    count against the query). With `collapse_candidates`, wrong candidates that share a group
    count once (a text repeated a thousand times is one retrieved text, not a thousand).

    Raises:
        ValueError: when a query's group has no candidate.
    """
    q, c = _unit(queries), _unit(candidates)
    qg = torch.as_tensor(np.asarray(query_groups), dtype=torch.long)
    cg = torch.as_tensor(np.asarray(candidate_groups), dtype=torch.long)
    missing = set(qg.tolist()) - set(cg.tolist())
    if missing:
        raise ValueError(f"{len(missing)} query group(s) have no candidate (first: {min(missing)})")
    n_groups = int(max(int(cg.max()), int(qg.max()))) + 1
    ranks = torch.empty(q.shape[0], dtype=torch.long)
    for start in range(0, q.shape[0], chunk_size):
        sim = q[start : start + chunk_size] @ c.T  # [b, N]
        group = qg[start : start + chunk_size]
        correct = cg[None, :] == group[:, None]
        best = sim.masked_fill(~correct, -torch.inf).amax(1, keepdim=True)  # [b, 1]
        if collapse_candidates:
            # best similarity of every group ([b, G]); a group's copies then count once
            per_group = torch.full((sim.shape[0], n_groups), -torch.inf).scatter_reduce(
                1, cg.expand(sim.shape[0], -1), sim, reduce="amax"
            )
            rows = torch.arange(sim.shape[0])
            per_group[rows, group] = -torch.inf
            ranks[start : start + chunk_size] = 1 + (per_group >= best).sum(1)
        else:
            ranks[start : start + chunk_size] = 1 + ((sim >= best) & ~correct).sum(1)
    return ranks.numpy()
