"""Data-parallel helpers: the global batch a contrastive loss must see.

Under DDP each process embeds its own B pairs, but a contrastive loss needs the negatives of the
whole global batch of G = W * B pairs. `global_loss` gathers the embeddings of every process with
gradients (the backward of the gather sends each process the gradient of its own rows, summed over
the processes that used them) and scores the local pairs against the global batch. Each process's
loss is a mean over its B rows, so the mean over processes is the single-process loss on the
concatenated batch; DDP averages gradients over processes, so the parameter gradients are exactly
those of that single-process loss (tests/test_ddp.py checks both on two gloo processes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

Terms = dict[str, torch.Tensor]


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] on each of W processes -> [W * B, ...] in rank order, differentiable.

    The backward is a reduce-scatter with sum: each process receives the gradient of its own rows
    from every process's loss. All processes must pass the same shape.
    """
    _, size = world()
    if size == 1:
        return x
    # torch's own autograd-aware gather (torch.distributed.nn.functional.all_gather is deprecated
    # in its favour); it runs on gloo (CPU) and NCCL alike
    from torch.distributed._functional_collectives import all_gather_single_autograd

    group = dist.group.WORLD
    assert group is not None
    return all_gather_single_autograd(x.contiguous(), 0, group)


def global_loss(
    loss: Callable[..., Terms],
    image: torch.Tensor,
    text: torch.Tensor,
    text_ids: torch.Tensor | None = None,
) -> Terms:
    """The loss of this process's pairs (rows) against the global batch of every process (columns).

    With one process this is `loss(image, text)`. `text_ids` ([B] sentence ids of this process's
    pairs), when given, is gathered without gradient into the global batch's [G] ids and passed
    as `text_ids=`; leave it None for a loss that does not take it.
    """
    rank, size = world()
    extra = {} if text_ids is None else {"text_ids": text_ids}
    if size == 1:
        return loss(image, text, **extra)
    if text_ids is not None:
        extra["text_ids"] = _all_gather(text_ids)
    return loss(
        image,
        text,
        all_image=gather_with_grad(image),
        all_text=gather_with_grad(text),
        offset=rank * image.shape[0],
        **extra,
    )


@torch.no_grad()
def gather_pairs(
    index: torch.Tensor, image: torch.Tensor, text: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every process's (index, image, text) rows, deduplicated by index and sorted by it.

    Validation data may be split across processes (with padding that repeats items) or repeated
    on every process; either way the result is the whole validation set once, row-aligned, so
    retrieval metrics equal a single process's.
    """
    _, size = world()
    if size > 1:
        index, image, text = (_all_gather(t) for t in (index, image, text))
    order = torch.argsort(index, stable=True)
    index, image, text = index[order], image[order], text[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return index[keep], image[keep], text[keep]


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    """Plain (no-gradient) all-gather along dim 0; shapes may differ between processes."""
    size = dist.get_world_size()
    lengths = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(size)]
    dist.all_gather(lengths, torch.tensor([x.shape[0]], device=x.device))
    longest = int(max(int(n.item()) for n in lengths))
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[: int(n.item())] for p, n in zip(parts, lengths, strict=True)])
