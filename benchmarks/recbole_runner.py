"""Train a RecBole sequential model on one atomic file and write every user's top unseen items.

Run by recbole_peers.py inside RecBole's own environment (its pins conflict with ours: ray
<= 2.6.3, colorlog 4.7.2), e.g. /work/recbole-venv/bin/python recbole_runner.py DIR MODEL
EPOCHS TOP BUDGET_S [key=value ...]. DIR holds DIR/bench/bench.inter (user_id:token, item_id:token, timestamp:float).

Training uses RecBole's own dataset (its next-item augmentation of each user's sequence), model
and Trainer on the file's rows but each user's last one, which is RecBole's validation target
(leave-one-out, full ranking): at most EPOCHS epochs and BUDGET_S seconds of training (an epoch reaching it
ends early), stopping after PATIENCE epochs without a better validation NDCG@10 and keeping
the best epoch. Scoring is RecBole's
full_sort_predict on each user's whole training sequence (its last MAX_ITEM_LIST_LENGTH
items), with the user's training items masked; the TOP best items per user go to
DIR/top.npz (user/item tokens as ints, no pickle) for pulserec's evaluator to rank and score."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch


def numpy2_aliases() -> None:
    """RecBole 1.2.1's Config re-creates numpy 1.x aliases from names numpy 2 removed
    (np.float_, np.complex_, np.unicode_); give them their numpy 2 meaning first so it runs
    on the numpy that our torch build needs."""
    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if old not in np.__dict__:
            setattr(np, old, new)


#: Epochs without a better validation NDCG@10 before training stops (RecBole's stopping_step,
#: whose own default is 10): 5, as 610 validation users make one epoch's NDCG noisy (+-5%).
PATIENCE = 5


def main(root: str, model_name: str, epochs: str, top: str, budget_s: str, *extra: str) -> None:
    numpy2_aliases()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(1)
    params = dict(arg.split("=", 1) for arg in extra)
    config = Config(model=model_name, dataset="bench", config_dict={
        "data_path": root, "epochs": int(epochs), "train_batch_size": 256, "loss_type": "CE",
        "train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 50, "show_progress": False,
        # each user's last training item is RecBole's validation target (early stopping only)
        "eval_args": {"split": {"LS": "valid_only"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10", "eval_batch_size": 1024,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "device": "cpu", "use_gpu": False,
        "checkpoint_dir": str(Path(root) / "saved"), "log_wandb": False, "state": "WARNING",
        **{k: float(v) if "." in v else int(v) for k, v in params.items()},
    })
    init_seed(config["seed"], config["reproducibility"])
    started = time.perf_counter()
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train._dataset).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    loaded = time.perf_counter()
    patience = int(params.get("stopping_step", PATIENCE))
    log = train_bounded(trainer, train, valid, int(epochs), float(budget_s), patience)
    trained = time.perf_counter()
    users, items = scores_top(model, dataset, int(top), config["MAX_ITEM_LIST_LENGTH"], Interaction)
    np.savez(Path(root) / "top.npz", users=users, items=items)
    print(f"recbole {model_name}: {time.strftime('%H:%M:%S')} load {loaded - started:.0f}s, train {trained - loaded:.0f}s "
          f"({len(log)} epochs, validation NDCG@10 {', '.join(f'{v:.4f}' for v in log)}; best kept), "
          f"score {time.perf_counter() - trained:.0f}s", file=sys.stderr)


def train_bounded(trainer, train, valid, epochs: int, budget_s: float, patience: int = PATIENCE) -> list[float]:
    """Train up to `epochs` epochs, each followed by a full-ranking validation NDCG@10; stop after
    `patience` epochs (RecBole's `stopping_step=`, default PATIENCE) without improvement or once `budget_s` seconds of training have passed (the
    last epoch is then cut short between two batches and still validated), and keep the best
    epoch's weights (in memory: no checkpoint file is written or read back)."""
    trainer.eval_collector.data_collect(train)
    batches = UntilDeadline(train, time.perf_counter() + budget_s)
    best, best_state, log, since = -1.0, None, [], 0
    for epoch in range(epochs):
        trainer._train_epoch(batches, epoch, show_progress=False)
        score, _ = trainer._valid_epoch(valid, show_progress=False)
        log.append(float(score))
        print(f"  epoch {epoch}: validation NDCG@10 {score:.4f} at {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
        if score > best:
            best, since = score, 0
            best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            since += 1
        if since >= patience or batches.expired:
            break
    if best_state is not None:
        trainer.model.load_state_dict(best_state)
    return log


class UntilDeadline:
    """RecBole's training batches until a deadline: an epoch that reaches it ends early."""

    def __init__(self, loader, deadline: float) -> None:
        self.loader, self.deadline, self.expired = loader, deadline, False

    def __iter__(self):
        for batch in self.loader:
            if time.perf_counter() > self.deadline:
                self.expired = True
                return
            yield batch


def scores_top(model, dataset, top: int, max_len: int, interaction_cls) -> tuple[np.ndarray, np.ndarray]:
    """Each user's `top` best unseen items (original tokens) from their whole sequence."""
    feat = dataset.inter_feat
    uid, iid, ts = (feat[f].numpy() for f in (dataset.uid_field, dataset.iid_field, dataset.time_field))
    order = np.lexsort((np.arange(len(uid)), ts, uid))
    uid, iid = uid[order], iid[order]
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
    ends = np.r_[starts[1:], len(uid)]
    model.eval()
    out_users, out_items = [], []
    for block in range(0, len(starts), 256):
        s, e = starts[block:block + 256], ends[block:block + 256]
        seq = np.zeros((len(s), max_len), dtype=np.int64)
        lengths = np.minimum(e - s, max_len)
        for r, (a, b) in enumerate(zip(s, e)):
            tail = iid[max(a, b - max_len):b]
            seq[r, :len(tail)] = tail
        batch = interaction_cls({"item_id_list": torch.from_numpy(seq), "item_length": torch.from_numpy(lengths)})
        with torch.no_grad():
            scores = model.full_sort_predict(batch).view(len(s), -1).numpy().copy()
        scores[:, 0] = -np.inf  # the padding token
        for r, (a, b) in enumerate(zip(s, e)):
            scores[r, iid[a:b]] = -np.inf
        best = np.argsort(-scores, axis=1)[:, :top]
        out_users.append(np.repeat(uid[s], top))
        out_items.append(best.ravel())
    users = np.concatenate(out_users)
    items = np.concatenate(out_items)
    return (dataset.id2token(dataset.uid_field, users).astype(np.int64),
            dataset.id2token(dataset.iid_field, items).astype(np.int64))


if __name__ == "__main__":
    main(*sys.argv[1:])
