"""What SASRec and GRU4Rec share: input embeddings, training loop, inference, save/load.

A concrete model only supplies its network (:class:`SequenceNetwork`): a module mapping
left-padded token batches (B, L) to hidden states (B, L, dim), where position t summarises
events 0..t. Scores of the next item are dot products of the last hidden state with the
(tied) item embeddings.

Training predicts every next event of every user's sequence (windows of ``max_len + 1``
events) with a sampled-softmax, BPR or full-softmax loss. Each user's last event is held out
for early stopping on NDCG@10, so ``fit`` never needs anything but the training log.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pulserec.ids import IdIndex
from pulserec.models.base import Query, Reason, pad_scores
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.sequence_data import (
    PAD,
    EncodedQuery,
    EventVocabulary,
    SequenceLog,
    TokenBatch,
    encode_query,
    pad_queries,
)

if TYPE_CHECKING:
    from pulserec.online.catalog import Catalog

log = logging.getLogger(__name__)

LossName = Literal["sampled_softmax", "bpr", "softmax"]


@dataclass
class SequenceConfig:
    """Hyper-parameters of a sequence model (the same fields serve both architectures)."""

    max_len: int = 50  # events of history the model reads
    dim: int = 64
    n_layers: int = 2  # attention blocks (SASRec) or GRU layers (GRU4Rec)
    n_heads: int = 1  # SASRec only
    dropout: float = 0.2
    event_features: bool = True  # add event-type and time-gap embeddings to the item embedding
    n_gap_buckets: int = 30
    loss: LossName = "sampled_softmax"
    n_negatives: int = 1024  # shared uniform negatives per batch (sampled_softmax and bpr)
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 50
    patience: int | None = 10  # epochs without validation gain before stopping; None: no validation
    validate_unseen_only: bool = True  # rank the held-out item among items the user has not touched
    time_budget: float | None = None  # seconds of training after which fit stops
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SequenceConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


# -- metrics (used for early stopping; the benchmark reuses them) ------------------------------
def next_item_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target item among that row's scores (ties count against it)."""
    target_scores = scores[np.arange(len(targets)), targets]
    return (scores >= target_scores[:, None]).sum(axis=1) - 1


def ranking_metrics(ranks: np.ndarray, k: int = 10) -> dict[str, float]:
    """HitRate@k and NDCG@k of a single relevant item at the given 0-based ranks."""
    hits = ranks < k
    return {
        f"hr@{k}": float(hits.mean()) if len(ranks) else 0.0,
        f"ndcg@{k}": float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else 0.0,
    }


# -- network pieces ----------------------------------------------------------------------------
@dataclass
class TensorBatch:
    """A :class:`TokenBatch` as long tensors."""

    items: Tensor
    types: Tensor
    gaps: Tensor

    @classmethod
    def of(cls, batch: TokenBatch) -> TensorBatch:
        return cls(torch.from_numpy(batch.items), torch.from_numpy(batch.types), torch.from_numpy(batch.gaps))

    def columns(self, sl: slice) -> TensorBatch:
        return TensorBatch(self.items[:, sl], self.types[:, sl], self.gaps[:, sl])

    def rows(self, index: Tensor | slice) -> TensorBatch:
        return TensorBatch(self.items[index], self.types[index], self.gaps[index])


class EventEmbedding(nn.Module):
    """Item embedding (scaled by sqrt(dim), tied with the output layer) + event-type + time-gap."""

    def __init__(self, n_item_tokens: int, vocab: EventVocabulary, config: SequenceConfig) -> None:
        super().__init__()
        self.scale = math.sqrt(config.dim)
        self.items = nn.Embedding(n_item_tokens, config.dim, padding_idx=PAD)
        self.types = nn.Embedding(vocab.n_type_tokens, config.dim, padding_idx=PAD) if config.event_features else None
        self.gaps = nn.Embedding(vocab.n_gap_tokens, config.dim, padding_idx=PAD) if config.event_features else None
        self.dropout = nn.Dropout(config.dropout)
        for table in (self.items, self.types, self.gaps):
            if table is not None:
                nn.init.normal_(table.weight, std=1.0 / self.scale)
                with torch.no_grad():
                    table.weight[PAD].zero_()

    def forward(self, batch: TensorBatch) -> Tensor:
        x = self.items(batch.items) * self.scale
        if self.types is not None and self.gaps is not None:
            x = x + self.types(batch.types) + self.gaps(batch.gaps)
        return self.dropout(x)


class SequenceNetwork(nn.Module, ABC):
    """Left-padded token batch -> hidden states; padding must not change real positions' output."""

    embedding: EventEmbedding

    @abstractmethod
    def forward(self, batch: TensorBatch) -> Tensor: ...

    def item_table(self) -> Tensor:
        """Output embeddings of item tokens (row 0 is padding)."""
        return self.embedding.items.weight


# -- the recommender ---------------------------------------------------------------------------
@dataclass
class EpochRecord:
    epoch: int
    loss: float
    seconds: float
    validation: dict[str, float] = field(default_factory=dict)


class SequenceRecommender(SavedState, ABC):
    """Base of the torch sequence models; subclasses set `name` and build their network."""

    name: ClassVar[str]
    default_config: ClassVar[SequenceConfig] = SequenceConfig()
    validation_k: ClassVar[int] = 10
    score_chunk: ClassVar[int] = 512

    def __init__(self, config: SequenceConfig | None = None, **overrides: Any) -> None:
        base = asdict(config or self.default_config)
        base.update(overrides)
        self.config = SequenceConfig.from_dict(base)
        self.net: SequenceNetwork | None = None
        self.vocab: EventVocabulary | None = None
        self.item_ids: IdIndex = IdIndex()
        self.known = np.zeros(0, dtype=bool)  # item index -> seen in training
        self.history: list[EpochRecord] = []

    @abstractmethod
    def build_network(self, n_item_tokens: int, vocab: EventVocabulary) -> SequenceNetwork: ...

    def untrained(self) -> SequenceRecommender:
        """This model with the same sizes and no training (no epoch, no held-out users): its
        request costs what the trained one's does (models/latency_budget.py prices it so)."""
        return type(self)(self.config, max_epochs=0, patience=None)

    # -- training ---------------------------------------------------------------------------
    def fit(self, data: Interactions, catalog: Catalog | None = None) -> SequenceRecommender:
        config = self.config
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        self.vocab = EventVocabulary.from_types(data.types, config.n_gap_buckets)
        self.item_ids = data.item_ids
        self.known = np.bincount(data.items, minlength=data.n_items)[: data.n_items] > 0
        sequences = SequenceLog.from_interactions(data, self.vocab)
        if config.patience is not None:
            sequences, val_users, val_targets = sequences.hold_out_last(min_length=3)
        else:
            val_users = val_targets = np.empty(0, dtype=np.int64)
        starts, ends = sequences.training_windows(config.max_len + 1)
        known_tokens = torch.from_numpy(np.flatnonzero(self.known) + 1)
        self.net = net = self.build_network(data.n_items + 1, self.vocab)
        optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.seed)
        self.history = []
        best_score, best_state, stale = -math.inf, None, 0
        started = time.perf_counter()
        for epoch in range(config.max_epochs):
            net.train()
            order = rng.permutation(len(starts))
            total, count = 0.0, 0
            for first in range(0, len(order), config.batch_size):
                rows = order[first : first + config.batch_size]
                batch = TensorBatch.of(sequences.window_batch(starts[rows], ends[rows], config.max_len + 1))
                inputs = batch.columns(slice(None, -1))
                loss = self._loss(net(inputs), inputs.items, batch.items[:, 1:], known_tokens, generator)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(rows)
                count += len(rows)
            record = EpochRecord(epoch, total / max(count, 1), time.perf_counter() - started)
            self.history.append(record)
            out_of_time = config.time_budget is not None and record.seconds > config.time_budget
            if len(val_users):
                record.validation = self._validate(sequences, val_users, val_targets)
                score = record.validation[f"ndcg@{self.validation_k}"]
                log.info("%s epoch %d loss %.4f %s", self.name, epoch, record.loss, record.validation)
                if score > best_score:
                    best_score, best_state, stale = score, copy.deepcopy(net.state_dict()), 0
                else:
                    stale += 1
                    if config.patience is not None and stale > config.patience:
                        break
            if out_of_time:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return self

    def _loss(
        self, hidden: Tensor, inputs: Tensor, targets: Tensor, known_tokens: Tensor, generator: torch.Generator
    ) -> Tensor:
        """Next-item loss over every position holding an event (and so a next one to predict)."""
        mask = (inputs != PAD) & (targets != PAD)
        hidden, targets = hidden[mask], targets[mask]
        table = self.net.item_table()  # type: ignore[union-attr]
        if self.config.loss == "softmax":
            return F.cross_entropy(hidden @ table[1:].T, targets - 1)
        pick = torch.randint(len(known_tokens), (self.config.n_negatives,), generator=generator)
        negatives = known_tokens[pick]
        positive = (hidden * table[targets]).sum(-1, keepdim=True)
        negative = (hidden @ table[negatives].T).masked_fill(negatives[None, :] == targets[:, None], -math.inf)
        if self.config.loss == "bpr":
            return -F.logsigmoid(positive - negative).mean()
        logits = torch.cat([positive, negative], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))

    def _validate(self, sequences: SequenceLog, users: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """NDCG/HR@k of the held-out item (among the user's unseen items if so configured)."""
        scores = self._score_tokens(sequences.user_tails(users, self.config.max_len))
        if self.config.validate_unseen_only:
            rows, seen = sequences.user_items(users)
            seen_before = seen != targets[rows]  # a repeat of an earlier item stays rankable
            scores[rows[seen_before], seen[seen_before] - 1] = -np.inf
        return ranking_metrics(next_item_ranks(scores, targets - 1), self.validation_k)

    # -- inference --------------------------------------------------------------------------
    def _require_fitted(self) -> SequenceNetwork:
        if self.net is None or self.vocab is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return self.net

    def _score_tokens(self, batch: TokenBatch) -> np.ndarray:
        """Next-item scores (rows x model items) of left-padded token rows; unknown items -inf."""
        net = self._require_fitted()
        net.eval()
        out = np.empty((len(batch), len(self.known)), dtype=np.float32)
        with torch.inference_mode():
            table = net.item_table()[1:]
            tensors = TensorBatch.of(batch)
            for first in range(0, len(batch), self.score_chunk):
                chunk = tensors.rows(slice(first, first + self.score_chunk))
                hidden = net(chunk)[:, -1]
                out[first : first + len(hidden)] = (hidden @ table.T).numpy()
        out[:, ~self.known] = -np.inf
        return out

    def encode(self, query: Query) -> EncodedQuery:
        self._require_fitted()
        return encode_query(query, self.vocab, self.known, self.config.max_len)  # type: ignore[arg-type]

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        """Next-item scores given the query's latest events; None when none is known to the model."""
        encoded = self.encode(query)
        if not len(encoded):
            return None
        return pad_scores(self._score_tokens(pad_queries([encoded], len(encoded)))[0], n_items)

    def score_batch(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        """Scores of many queries at once (rows align with `queries`); rows of queries without
        any known event are all -inf."""
        encoded = [self.encode(q) for q in queries]
        scorable = np.array([len(e) > 0 for e in encoded], dtype=bool)
        out = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        if scorable.any():
            width = max(len(e) for e in encoded)
            scores = self._score_tokens(pad_queries([e for e in encoded if len(e)], width))
            keep = min(n_items, scores.shape[1])
            out[scorable, :keep] = scores[:, :keep]
        return out

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Cosine similarity of the item embeddings (items used in the same contexts are close)."""
        if not self._knows(item):
            return None
        net = self._require_fitted()
        with torch.inference_mode():
            table = F.normalize(net.item_table()[1:], dim=1)
            scores = (table @ table[item]).numpy().astype(np.float32)
        scores[~self.known] = -np.inf
        return pad_scores(scores, n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        known = len(self.encode(query)) > 0
        return [
            Reason("sequence", detail="follows your recent sequence") if known and self._knows(i) else None
            for i in items
        ]

    def _knows(self, item: int) -> bool:
        return 0 <= int(item) < len(self.known) and bool(self.known[int(item)])

    # -- persistence (see pulserec.models.persist: arrays in .npz, never torch.load) ------------
    def saved_params(self) -> dict[str, Any]:
        return asdict(self.config)

    def saved_values(self) -> dict[str, Any]:
        """The network's state_dict as arrays, the item id list, trained-item mask and event types."""
        net = self._require_fitted()
        return {
            "state_dict": {key: tensor.detach().cpu().numpy() for key, tensor in net.state_dict().items()},
            "item_ids": self.item_ids,
            "known": self.known,
            "event_types": list(self.vocab.types),  # type: ignore[union-attr]
        }

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> SequenceRecommender:
        model = cls(SequenceConfig.from_dict(params))
        model.vocab = EventVocabulary(tuple(values["event_types"]), model.config.n_gap_buckets)
        model.item_ids = values["item_ids"]
        model.known = np.asarray(values["known"], dtype=bool)
        model.net = model.build_network(len(model.item_ids) + 1, model.vocab)
        model.net.load_state_dict({key: torch.from_numpy(np.array(array)) for key, array in values["state_dict"].items()})
        model.net.eval()
        return model
