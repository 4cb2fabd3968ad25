"""SASRec: causal self-attention over the user's recent events (Kang & McAuley, 2018).

Pre-norm transformer blocks over item + event-type + time-gap + position embeddings; each
position attends to itself and earlier real (non-padding) events only, so a short sequence
gives the same output with or without left padding. Order enters through a learned attention
bias per head and distance (in events) between two positions, instead of SASRec's absolute
position embeddings: the output for a prefix then does not depend on where the prefix sits in
a training window, so every causal training position looks like a serving request (whose
latest event is always the last column), and time gaps come in through the input features.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from pulserec.models.base import Query, Reason
from pulserec.models.sequence_base import (
    EventEmbedding,
    SequenceConfig,
    SequenceNetwork,
    SequenceRecommender,
    TensorBatch,
)
from pulserec.models.sequence_data import PAD, EventVocabulary, pad_queries


class CausalSelfAttention(nn.Module):
    """Multi-head attention restricted by a boolean (B, 1, L, L) mask; can return its weights."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, allowed: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, dim // self.n_heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(dim // self.n_heads) + bias
        weights = logits.masked_fill(~allowed, -math.inf).softmax(dim=-1)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, length, dim)
        return self.out(mixed), weights


class AttentionBlock(nn.Module):
    """x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.dim)
        self.attention = CausalSelfAttention(config.dim, config.n_heads, config.dropout)
        self.ffn_norm = nn.LayerNorm(config.dim)
        self.ffn = nn.Sequential(
            nn.Linear(config.dim, config.dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.dim, config.dim),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, allowed: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        attended, weights = self.attention(self.attention_norm(x), allowed, bias)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        return x, weights


class SASRecNetwork(SequenceNetwork):
    def __init__(self, n_item_tokens: int, vocab: EventVocabulary, config: SequenceConfig) -> None:
        super().__init__()
        self.max_len = config.max_len
        self.embedding = EventEmbedding(n_item_tokens, vocab, config)
        # learned attention bias per head and distance (in events) between query and key
        self.distance_bias = nn.Embedding(config.max_len, config.n_heads)
        nn.init.zeros_(self.distance_bias.weight)
        self.blocks = nn.ModuleList(AttentionBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, batch: TensorBatch) -> Tensor:
        return self.encode(batch)[0]

    def encode(self, batch: TensorBatch) -> tuple[Tensor, Tensor | None]:
        """Hidden states and the last block's attention weights (B, heads, L, L)."""
        length = batch.items.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence of {length} events is longer than max_len {self.max_len}")
        x = self.embedding(batch)
        steps = torch.arange(length)
        distance = (steps[:, None] - steps[None, :]).clamp(0, self.max_len - 1)
        bias = self.distance_bias(distance).permute(2, 0, 1)  # (heads, L, L)
        real = batch.items != PAD
        causal = distance.new_ones(length, length, dtype=torch.bool).tril()
        # padding rows attend to themselves only, which keeps their softmax finite
        allowed = (causal & real[:, None, :]) | torch.eye(length, dtype=torch.bool)
        allowed = allowed[:, None]
        weights = None
        for block in self.blocks:
            x, weights = block(x, allowed, bias)
        return self.norm(x), weights


class SASRec(SequenceRecommender):
    """Self-attentive sequential recommendation: next-item scores from the latest events."""

    name: ClassVar[str] = "sasrec"
    default_config: ClassVar[SequenceConfig] = SequenceConfig(n_layers=2, n_heads=1, dropout=0.2)

    def build_network(self, n_item_tokens: int, vocab: EventVocabulary) -> SASRecNetwork:
        return SASRecNetwork(n_item_tokens, vocab, self.config)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        """Points at the history event the last position attends to most (averaged over heads)."""
        encoded = self.encode(query)
        if not len(encoded) or not self.config.n_layers:
            return super().explain(query, items)
        net = self._require_fitted()
        net.eval()
        with torch.inference_mode():
            _, weights = net.encode(TensorBatch.of(pad_queries([encoded], len(encoded))))
        focus = int(weights[0, :, -1].mean(dim=0).argmax())  # type: ignore[index]
        source = int(encoded.source[focus])
        event_type = query.types[source] if len(query.types) == len(query.items) else None
        reason = Reason("history", item=int(query.items[source]), event_type=event_type,
                        detail="follows your recent sequence")
        return [reason if self._knows(i) else None for i in items]
