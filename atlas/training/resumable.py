"""Training item order that is a pure function of the seed and the position in the run,
so a run killed at any step and resumed from its checkpoint draws exactly the items the
uninterrupted run would have drawn.

Position ``p`` (counting every item this rank has drawn since step 0) maps to an item
key ``(index, item_seed)``:

- ``index``: position ``p % n`` of a permutation of the ``n`` items, drawn anew for each
  pass ``p // n`` from ``(seed, pass)``;
- ``item_seed``: drawn from ``(seed, p)``; the item's own randomness (crop position,
  rotation, frames) comes from it, whatever process or worker builds the item.

With several processes (DDP), rank ``r`` of ``w`` takes the global positions
``p * w + r``, so ranks draw disjoint items of one shared order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

ItemKey = tuple[int, int]  # (item index, item seed)


class ResumableSampler(Sampler[ItemKey]):
    """An endless stream of item keys starting at position ``start``.

    n_items: items in one pass; seed: the run's seed; rank, world_size: this process's
    share of the global order; start: positions (items of this rank) already consumed,
    e.g. ``global_step * batch_size * accumulate_grad_batches`` when resuming.
    """

    def __init__(
        self, n_items: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> None:
        if n_items < 1:
            raise ValueError("ResumableSampler needs at least one item")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.n_items = n_items
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def key(self, position: int) -> ItemKey:
        """The item key at this rank's ``position``."""
        p = position * self.world_size + self.rank
        order = np.random.default_rng([self.seed, 0, p // self.n_items]).permutation(self.n_items)
        item_seed = int(np.random.default_rng([self.seed, 1, p]).integers(0, 2**62))
        return int(order[p % self.n_items]), item_seed

    def __iter__(self) -> Iterator[ItemKey]:
        position = self.start
        while True:
            yield self.key(position)
            position += 1
