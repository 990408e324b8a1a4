"""A shuffling sampler that shards the global batch across processes and resumes mid-epoch.

Why not DataLoader(shuffle=True) plus Lightning's DistributedSampler: a run restarted from a
mid-epoch checkpoint must see the rest of the same epoch, in the same order, with the same random
augmentation and sentence choices, as the uninterrupted run would have. Here everything random
about the data is a function of (seed, epoch, position in the epoch):

- the epoch's order is a permutation drawn from (seed, epoch);
- every item comes with its own seed, drawn from the same stream, which the dataset uses for its
  augmentation and sentence choice (so neither depends on worker processes, prefetching, or the
  global RNG that the model's dropout also draws from);
- step s of the epoch is the global batch order[s * G:(s + 1) * G], G = batch_size * processes,
  and process r takes its r-th slice of B, so W processes together see exactly the batches that
  one process with batch size G would.

Resuming is then skipping whole batches of indices, without loading them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
from torch.utils.data import DistributedSampler

ItemKey = tuple[int, int]
"""(dataset index, item seed): what the sampler yields and the dataset receives."""


class ResumableSampler(DistributedSampler):
    """Yields `(index, item_seed)` keys: this process's share of every global batch of an epoch.

    A subclass of `DistributedSampler` so that Lightning leaves it in place under DDP (it replaces
    any other sampler with its own), and it follows Lightning's `set_epoch` calls.

    Args:
        dataset: the (sized) dataset to sample.
        batch_size: items per process and step (B).
        seed: base of the epoch permutations and item seeds.
        num_replicas / rank: processes sharing each global batch, and this one's rank.
        start_epoch / start_batch: where the first iteration begins (a resumed run): the epoch,
            and how many of its steps are already done. Later iterations start at batch 0 of the
            epoch given to `set_epoch`.
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        start_epoch: int = 0,
        start_batch: int = 0,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]  # only its length is used
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        length = len(dataset)
        self.length = length
        self.batch_size = batch_size
        global_batch = batch_size * num_replicas
        if length >= global_batch:
            # a contrastive batch of one has no negatives: drop the ragged last global batch
            self.steps = length // global_batch
            self.local_items = self.steps * batch_size
        elif num_replicas == 1:
            self.steps, self.local_items = 1, length  # a dataset smaller than one batch
        else:
            raise ValueError(
                f"{length} training items cannot fill one global batch of {batch_size} x "
                f"{num_replicas} processes; lower the batch size or the number of devices"
            )
        self.epoch = start_epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return self.local_items

    def epoch_keys(self, epoch: int) -> list[ItemKey]:
        """All (index, seed) keys of an epoch in global order (every process's, [steps * G])."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.length)
        seeds = rng.integers(0, 2**31 - 1, size=self.length)
        return [(int(i), int(s)) for i, s in zip(order, seeds, strict=True)]

    def __iter__(self) -> Iterator[ItemKey]:  # type: ignore[override]  # keys, not plain indices
        epoch, skip = self.epoch, self.start_batch
        self.start_batch = 0  # a resumed position applies to the first iteration only
        keys = self.epoch_keys(epoch)
        b, g = self.batch_size, self.batch_size * self.num_replicas
        if self.local_items < b:  # the single ragged batch of a tiny dataset
            yield from keys[: self.local_items] if skip == 0 else []
            return
        for step in range(skip, self.steps):
            start = step * g + self.rank * b
            yield from keys[start : start + b]
