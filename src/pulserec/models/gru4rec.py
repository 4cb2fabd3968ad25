"""GRU4Rec: a recurrent network over the user's recent events (Hidasi et al., 2016).

Trained like SASRec (every next event of every window, sampled softmax over shared negatives,
which later GRU4Rec work found to beat the original pairwise losses), so the two are compared
on architecture alone. Left padding is removed before the GRU runs (rows are left-aligned and
packed), so padding never changes a real event's state.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pulserec.models.sequence_base import (
    EventEmbedding,
    SequenceConfig,
    SequenceNetwork,
    SequenceRecommender,
    TensorBatch,
)
from pulserec.models.sequence_data import PAD, EventVocabulary


def roll_rows(x: Tensor, shift: Tensor) -> Tensor:
    """out[b, j] = x[b, (j + shift[b]) % L] for a (B, L, D) tensor."""
    length = x.shape[1]
    index = (torch.arange(length)[None, :] + shift[:, None]) % length
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class GRU4RecNetwork(SequenceNetwork):
    def __init__(self, n_item_tokens: int, vocab: EventVocabulary, config: SequenceConfig) -> None:
        super().__init__()
        self.embedding = EventEmbedding(n_item_tokens, vocab, config)
        self.gru = nn.GRU(
            config.dim,
            config.dim,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, batch: TensorBatch) -> Tensor:
        x = self.embedding(batch)
        lengths = (batch.items != PAD).sum(dim=1)
        width = x.shape[1]
        if bool((lengths == width).all()):  # no padding: the single-request path
            return self.dropout(self.gru(x)[0])
        padding = width - lengths
        packed = pack_padded_sequence(roll_rows(x, padding), lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=width)
        return self.dropout(roll_rows(out, -padding))


class GRU4Rec(SequenceRecommender):
    """Session-based recurrent recommendation: next-item scores from the latest events."""

    name: ClassVar[str] = "gru4rec"
    default_config: ClassVar[SequenceConfig] = SequenceConfig(n_layers=1, dropout=0.2)

    def build_network(self, n_item_tokens: int, vocab: EventVocabulary) -> GRU4RecNetwork:
        return GRU4RecNetwork(n_item_tokens, vocab, self.config)
