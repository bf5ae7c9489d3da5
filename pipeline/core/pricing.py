"""What tokens cost: a price, and the cost of a usage.

Each model's default price, Anthropic's list price in USD per million tokens, is in the one
table of models (``pipeline.core.catalogue``, with its source and date). A gateway may charge
differently: a job sets its own in ``[pricing]``. Cache writes are priced at the 5-minute
rate (1.25x input); reads at 0.1x input; Message Batches at half of every rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.models import Usage

BATCH_DISCOUNT = 0.5
_MTOK = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def from_list(cls, input: float, output: float) -> Price:
        """A model priced the usual way: cache writes 1.25x input, reads 0.1x."""
        return cls(input, output, round(input * 1.25, 6), round(input * 0.1, 6))

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """USD for ``usage``; Message Batches at half price."""
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / _MTOK
        return total * BATCH_DISCOUNT if batch else total
