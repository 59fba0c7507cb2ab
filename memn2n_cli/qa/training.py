"""The bAbI training recipe of Section 4.2, and evaluation by summed counts.

SGD, learning rate 0.01 halved every 25 epochs for 100 epochs (joint: 60 epochs, halved every 15);
batch 32 with the loss summed, not averaged; gradients of L2 norm above 40 rescaled to 40; 10% of
the training stories held out for validation. Linear start: the memory softmaxes are removed and
training runs at 0.005 for 20 epochs, as in the authors' code (``ls_patience`` = 1 ends it as soon
as the validation loss stops falling, the paper's wording), then they are re-inserted and the
schedule above runs from 0.005. Random noise: 10% empty memories inserted into each story's time
line at training time (Sec. 4.1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memn2n_cli.qa.batches import make_batch
from memn2n_cli.configs import EVAL_BATCH, TrainConfig
from memn2n_cli.model import MemN2N
from tasks.qa import Encoded, QATask, metrics


def random_noise_time(size: Tensor, slots: int, noise: float, generator: torch.Generator) -> Tensor:
    """Time indices with empty memories inserted (Sec. 4.1, random noise), (N, slots).

    A story of n sentences gets n_blank ~ U{0..ceil(noise n)} empty memories among its sentences:
    its sentences keep their order and take n distinct random indices out of 0..n+n_blank-1, the
    most recent (slot 0) the smallest. Indices past the last temporal embedding use the last one.
    The draws are the CPU ``generator``'s, whatever the device of ``size`` (that of the result).
    """
    device = size.device
    n = size.to(torch.float32)
    blanks = (torch.rand(len(size), generator=generator).to(device) * (torch.ceil(noise * n) + 1)).floor()
    positions = slots + math.ceil(noise * slots)
    keys = torch.rand(len(size), positions, generator=generator).to(device)
    keys = keys.masked_fill(torch.arange(positions, device=device) >= (n + blanks).unsqueeze(1), 2.0)  # never among the first n + n_blank
    chosen = keys.argsort(dim=1)[:, :slots]  # the first n: a random n-subset of 0..n+n_blank-1
    chosen = chosen.masked_fill(torch.arange(slots, device=device) >= size.unsqueeze(1), positions)  # empty slots last
    return chosen.sort(dim=1).values.clamp(max=slots - 1)


@torch.no_grad()
def evaluate(model: MemN2N, data: Encoded, batch_size: int = EVAL_BATCH, task: QATask | None = None,
             answers: list[str] | None = None) -> dict[int, dict]:
    """Summed counts for each task in ``data``: {correct, total, loss} and, for the attention,
    {supported, on_support (per hop), on_support_any} (see tasks.qa.metrics); with ``task`` and
    the answer vocabulary ``answers``, also the counts of the task's own (`QATask.count`)."""
    if len(data) == 0:  # no validation set (validation_fraction 0): no counts
        return {}
    model.eval()
    correct, loss, on_support, predicted = [], [], [], []
    for index in torch.arange(len(data), device=data.answer.device).split(batch_size):
        batch = make_batch(data, index)
        out = model(**batch)
        predicted.append(out.logits.argmax(-1))
        correct.append(predicted[-1] == batch["answer"])
        # An answer never seen in training (-1) counts as an error and adds no loss.
        loss.append(torch.nn.functional.cross_entropy(out.logits, batch["answer"], reduction="none", ignore_index=-1))
        support = data.support[index, : out.attention.shape[-1]]  # (B, M)
        on_support.append(support.gather(1, out.attention.argmax(-1)))  # (B, K) hop k's top sentence supports
    model.train()
    # Counted per task on the host: a few copies, not several waits for the device per task.
    correct, loss, on_support = torch.cat(correct).cpu(), torch.cat(loss).cpu().double(), torch.cat(on_support).cpu()
    supported, numbered, predicted = data.support.any(1).cpu(), data.task.cpu(), torch.cat(predicted).cpu()
    expected = data.answer.cpu()
    counts = {}
    for t in numbered.unique().tolist():
        of_task = numbered == t
        counts[t] = {"correct": int(correct[of_task].sum()), "total": int(of_task.sum()),
                     "loss": float(loss[of_task].sum()), "supported": int(supported[of_task].sum()),
                     "on_support": on_support[of_task].sum(0).tolist(),
                     "on_support_any": int(on_support[of_task].any(1).sum())}
        if task is not None:
            named = [answers[i] for i in predicted[of_task].tolist()]
            truth = [answers[i] if i >= 0 else None for i in expected[of_task].tolist()]
            counts[t].update(task.count(named, truth))
    return counts


def summed(counts: dict[int, dict[str, float]]) -> dict[str, float]:
    return {key: sum(c[key] for c in counts.values()) for key in ("correct", "total", "loss")}


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """eta, halved every ``anneal_every`` epochs of the main phase (epoch counts from 0)."""
    base = config.ls_lr if config.linear_start else config.lr
    return base * 0.5 ** (epoch // config.anneal_every)


class Schedule:
    """One model's way through the recipe: the linear-start phase, then ``epochs`` epochs of the
    main phase; the learning rate of the next epoch; when the softmaxes come back (Sec. 4.2)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.linear = config.linear_start
        self.epoch = 0  # epochs of the main phase done
        self.linear_epochs, self.stalled, self.best_valid_loss = 0, 0, math.inf

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def lr(self) -> float:
        return self.config.ls_lr if self.linear else learning_rate(self.config, self.epoch)

    def state(self) -> dict:
        return {"linear": self.linear, "epoch": self.epoch, "linear_epochs": self.linear_epochs,
                "stalled": self.stalled, "best_valid_loss": self.best_valid_loss}

    def restore(self, state: dict) -> None:
        self.linear, self.epoch, self.linear_epochs = state["linear"], state["epoch"], state["linear_epochs"]
        self.stalled, self.best_valid_loss = state["stalled"], state["best_valid_loss"]

    def end_epoch(self, record: dict) -> None:
        if not self.linear:
            self.epoch += 1
            return
        self.linear_epochs += 1
        valid_loss = record.get("valid_loss", math.inf)
        self.stalled = self.stalled + 1 if valid_loss >= self.best_valid_loss else 0
        self.best_valid_loss = min(self.best_valid_loss, valid_loss)
        if 0 < self.config.ls_patience <= self.stalled or self.linear_epochs >= self.config.ls_epochs:
            self.linear = False  # re-insert the softmaxes


def epoch_record(epoch: int, schedule: Schedule, lr: float, counts: dict[str, dict]) -> dict:
    """One line of a training history: phase, learning rate, and each split's metrics."""
    record = {"epoch": epoch, "phase": "linear" if schedule.linear else "softmax", "lr": lr}
    record.update({f"{split}_{name}": value for split, c in counts.items() for name, value in metrics(c).items()})
    return record


def diverged(history: list[dict]) -> bool:
    """Whether the last epoch's training loss is not finite: the weights are lost (NaN or infinity),
    and that model's training stops there, as the language model's does."""
    return bool(history) and not math.isfinite(history[-1]["train_loss"])


def fit(model: MemN2N, train: Encoded, valid: Encoded, config: TrainConfig) -> list[dict]:
    """Train ``model`` in place; returns one record per epoch (linear-start epochs included).

    The recipe written plainly, one model and PyTorch's optimizer: the reference that
    `restarts.fit_restarts`, through which `memn2n train` and `memn2n sweep` train, is tested against."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    model.train()
    schedule = Schedule(config)
    history: list[dict] = []
    while not schedule.done and not diverged(history):
        model.linear_start = schedule.linear
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr
        time = None
        if config.random_noise > 0 and model.temporal is not None:
            time = random_noise_time(train.memory_size, train.memory.shape[1], config.random_noise, generator)
        train_loss, train_correct = 0.0, 0.0
        for index in torch.randperm(len(train), generator=generator).to(train.answer.device).split(config.batch_size):
            batch = make_batch(train, index, time)
            out = model(**batch)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            train_loss += float(out.loss.detach())
            train_correct += float((out.logits.argmax(-1) == batch["answer"]).sum())
        counts = {"train": {"correct": train_correct, "total": len(train), "loss": train_loss}}
        if len(valid):
            counts["valid"] = summed(evaluate(model, valid))
        record = epoch_record(len(history) + 1, schedule, optimizer.param_groups[0]["lr"], counts)
        history.append(record)
        schedule.end_epoch(record)
    model.linear_start = False
    return history
