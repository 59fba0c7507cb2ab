"""Restarts trained together: R models of the same recipe, one vmapped forward and backward for all.

The paper reports the best of 10 restarts per task. Restarts of one task and configuration share
their data, so their parameters are stacked along a first dimension (``stack_module_state``) and
the unchanged model runs once for all of them under ``torch.func.vmap``. Each restart keeps what
makes it a restart of its own: its seed (initialisation, done by the caller; batch order; random
noise), its linear-start switch-over, its learning rate and its gradient clipping. The result is
what `fit` gives each seed alone, to floating-point tolerance (tests/test_sweep.py checks it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from memn2n_cli.qa import kernel as qa_kernel
from memn2n_cli.qa.batches import make_batch
from memn2n_cli.configs import EVAL_BATCH, TrainConfig
from memn2n_cli.devices import sums_device
from memn2n_cli.model import MemN2N
from memn2n_cli.qa.training import Schedule, diverged, epoch_record, random_noise_time
from tasks.qa import Encoded

WORD_EMBEDDINGS = ("embedding", "query_embedding")  # whose row 0, the nil word, stays zero


class VmappedStep:
    """R restarts' step on the examples of ``data``, the unchanged model run once for all under
    vmap: the plain PyTorch twin of `qa_kernel.KernelStep`, called as it is, and the only engine on
    a GPU. ``step(params, linear, index, time=None, backward=True)`` -> the summed loss (R,), the
    logits (R, B, answers) and, with ``backward``, the gradients of ``params`` (None without);
    ``index`` (R, B) each restart's examples, or (B,) the same for all; ``time`` (R, N, M) each
    restart's temporal index of every example's slots (None: the slot)."""

    def __init__(self, model: MemN2N, buffers: dict[str, Tensor], data: Encoded):
        base = copy.deepcopy(model).to("meta")

        def run(p, b, linear, sentences, story, story_size, query, time, answer):
            out = functional_call(base, (p, b), (story, story_size, query, time, answer),
                                  {"linear_start": linear, "sentences": sentences})
            return out.loss, out.logits

        self.step = vmap(run)  # every argument has the restart dimension first
        self.check = vmap(run, in_dims=(0, 0, 0, None, None, None, None, None, None))  # one batch for all restarts
        self.buffers, self.data = buffers, data
        self.slots = torch.arange(data.memory.shape[1], device=data.memory.device)

    def __call__(self, params: dict[str, Tensor], linear: Tensor, index: Tensor, time: Tensor | None = None,
                 backward: bool = True) -> tuple[Tensor, Tensor, dict[str, Tensor] | None]:
        batch = make_batch(self.data, index, time)
        default_time = self.slots[: batch["story"].shape[-1]].expand(*index.shape, -1)
        loss, logits = (self.step if index.dim() == 2 else self.check)(
            params, self.buffers, linear, batch["sentences"], batch["story"], batch["story_size"], batch["query"],
            batch.get("time", default_time), batch["answer"])
        grads = dict(zip(params, torch.autograd.grad(loss.sum(), list(params.values())))) if backward else None
        return loss, logits, grads


@dataclass
class Progress:
    """Where restarts trained together are, at the end of an epoch: enough to go on from there and
    reach what an uninterrupted run reaches, bit for bit."""

    params: dict[str, Tensor]  # name -> (R, ...)
    generators: list[Tensor]  # each restart's random state (batch order, random noise)
    schedules: list[dict]  # Schedule.state() of each
    histories: list[list[dict]]


def fit_restarts(models: list[MemN2N], train: Encoded, valid: Encoded, config: TrainConfig, seeds: list[int],
                 on_epoch: Callable[[int, dict], None] | None = None, start: Progress | None = None,
                 on_progress: Callable[[Progress], None] | None = None, kernel: bool | None = None) -> list[list[dict]]:
    """Train ``models`` in place, restart r with ``seeds[r]``; one history per restart, as `fit`
    returns. ``start``: go on from where an earlier call was (its ``on_progress``, called after
    every epoch). ``kernel``: the step's engine, the compiled kernel (`qa_kernel.KernelStep`) or the
    vmapped model (`VmappedStep`); None: the kernel where it runs (the CPU, a C compiler)."""
    R = len(models)
    params, buffers = stack_module_state(models)  # name -> (R, ...)
    if kernel is None:
        kernel = qa_kernel.usable(train.answer.device)
    if kernel:
        train_step = qa_kernel.KernelStep(models[0].config, models[0].answer_word_ids, train)
        valid_step = qa_kernel.KernelStep(models[0].config, models[0].answer_word_ids, valid) if len(valid) else None
    else:
        train_step, valid_step = VmappedStep(models[0], buffers, train), VmappedStep(models[0], buffers, valid)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    schedules = [Schedule(config) for _ in range(R)]
    histories: list[list[dict]] = [[] for _ in range(R)]
    if start is not None:
        with torch.no_grad():
            for name, value in start.params.items():
                params[name].copy_(value)
        for generator, state in zip(generators, start.generators):
            generator.set_state(state)
        for schedule, state in zip(schedules, start.schedules):
            schedule.restore(state)
        histories = [list(history) for history in start.histories]
    device = train.answer.device
    sums = sums_device(device)  # the float64 sums' (the host's for mps)
    slots = torch.arange(train.memory.shape[1], device=device)
    while any(training := [not s.done and not diverged(h) for s, h in zip(schedules, histories)]):
        linear = torch.tensor([s.linear for s in schedules], device=device)
        # A finished or diverged restart stays as it is: a learning rate of 0.
        lr = torch.tensor([s.lr if t else 0.0 for s, t in zip(schedules, training)], device=device)
        time = None
        if config.random_noise > 0 and models[0].temporal is not None:
            time = torch.stack([random_noise_time(train.memory_size, len(slots), config.random_noise, g) for g in generators])
        order = torch.stack([torch.randperm(len(train), generator=g) for g in generators]).to(device)  # (R, N)
        loss_sum, correct = torch.zeros(R, dtype=torch.float64, device=sums), torch.zeros(R, device=device)
        for index in order.split(config.batch_size, dim=1):
            loss, logits, grads = train_step(params, linear, index, time)
            with torch.no_grad():
                for name in WORD_EMBEDDINGS:
                    if name in grads:
                        grads[name][..., 0, :] = 0  # the nil word's embedding is held at zero
                # clip_grad_norm_ for each restart: rescale its gradients to L2 norm at most max_norm
                norm = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()
                scale = lr * (config.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)  # (R,)
                for name, g in grads.items():
                    params[name].sub_(scale.view(-1, *[1] * (g.dim() - 1)) * g)
            loss_sum += loss.detach().to(sums).double()
            correct += (logits.argmax(-1) == train.answer[index]).sum(1)
        valid_counts = None
        if len(valid):
            v_loss, v_correct = torch.zeros(R, dtype=torch.float64, device=sums), torch.zeros(R, device=device)
            with torch.no_grad():
                for index in torch.arange(len(valid), device=device).split(EVAL_BATCH):
                    loss, logits, _ = valid_step(params, linear, index, backward=False)
                    v_loss += loss.to(sums).double()
                    v_correct += (logits.argmax(-1) == valid.answer[index]).sum(1)
            valid_counts = [{"correct": int(c), "total": len(valid), "loss": float(l)} for c, l in zip(v_correct, v_loss)]
        for r, schedule in enumerate(schedules):
            if not training[r]:
                continue
            counts = {"train": {"correct": float(correct[r]), "total": len(train), "loss": float(loss_sum[r])}}
            if valid_counts:
                counts["valid"] = valid_counts[r]
            record = epoch_record(len(histories[r]) + 1, schedule, schedule.lr, counts)  # not lr[r], a float32
            histories[r].append(record)
            if on_epoch:
                on_epoch(r, record)
            schedule.end_epoch(record)
        if on_progress:
            on_progress(Progress({name: value.detach().clone() for name, value in params.items()},
                                 [g.get_state() for g in generators], [s.state() for s in schedules], histories))
    for r, model in enumerate(models):
        model.load_state_dict({name: value[r].detach() for name, value in params.items()}, strict=False)
        model.linear_start = False
    return histories
