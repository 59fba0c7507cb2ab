"""The language-model training recipe of Section 5.1, resumable to the same result.

Each step predicts the next word at ``batch_size`` random positions of the training text, the
memory holding the N words up to and including the current one (as the authors' code draws
them). SGD at 0.01; gradients of L2 norm above 50 rescaled to 50; after each epoch the learning
rate is divided by 1.5 when the validation cost did not decrease (by 0.01%, as in the authors'
code), and training stops when it falls below 1e-5. Perplexity is exp of the summed negative
log-likelihood over the summed tokens, so it adds up across batches and processes.

A run directory checkpoints at the end of each epoch and when ``max_steps`` stops it: weights,
learning rate, position in the epoch, the random generator's state and the history, so that
``resume`` continues exactly where the run stopped.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from memn2n_cli.lm import kernel as lm_kernel
from memn2n_cli.checkpoint import (CONFIG_FILE, STATE_FILE, check_same_data, config_from, data_record,
                                   language_model_files, load_language_model, new_run_config, read_lm_state, run_data_dir,
                                   write_run, writing)
from memn2n_cli.configs import EVAL_BATCH, NEXT_WORDS, LMConfig, LMTrainConfig, check_next_words, check_split
from memn2n_cli.devices import backend_for, rank_device, resolve_device, sums_device, under_torchrun
from memn2n_cli.errors import ArgumentError, ConfigError, UserError, at_least, check_text, of_types
from memn2n_cli.history import HISTORY_FILE, History
from memn2n_cli.model_card import CARD_FILE, lm_card, read_card
from memn2n_cli.model import MemN2NLM
from memn2n_cli.wording import counted
from tasks import get_task
from tasks.lm import UNK, Corpus, resolve_data_dir
from tasks.ptb_generator import is_generated

log = logging.getLogger("memn2n")


@dataclass
class LMState:
    """Where a run is: enough, with the weights and the generator, to resume it exactly."""

    lr: float
    epoch: int = 0  # epochs finished
    step: int = 0  # steps done in the current epoch
    steps: int = 0  # steps done in all
    epoch_nll: float = 0.0  # the current epoch's summed training cost so far
    finished: bool = False
    seconds: float = 0.0  # time spent in training steps, all sessions together
    epoch_seconds: float = 0.0  # of which in the current epoch
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):  # as state.json of a run gives it: each field of its type
        of_types(self)
        at_least(self, 0, "lr", "epoch", "step", "steps")
        if not isinstance(self.history, list) or not all(isinstance(record, dict) for record in self.history):
            raise ConfigError("{history} must be a list of epoch records")


def next_lr(history: list[dict], lr: float, config: LMTrainConfig) -> float:
    """Divide the learning rate by 1.5 when the last epoch's validation cost did not decrease
    (is above 0.9999 times the one before, as in the authors' code)."""
    if len(history) > 1 and history[-1]["valid_loss"] > history[-2]["valid_loss"] * 0.9999:
        return lr / config.lr_divisor
    return lr


def stops(state: LMState, config: LMTrainConfig) -> bool:
    """Section 5.1's stopping rule: the learning rate fallen below ``min_lr``, or ``max_epochs``
    done; or the weights diverged (see `diverged`)."""
    return state.lr < config.min_lr or state.epoch >= config.max_epochs or diverged(state.history)


def diverged(history: list[dict]) -> bool:
    """Whether the last epoch left weights whose validation perplexity is not finite: NaN weights,
    or a cost per word past a float's range (uniform guessing costs log V, 9.2 nats for PTB). Without
    the paper's clipping at 50, 150 / 6 / 100 is NaN within its first 20 steps."""
    return bool(history) and not math.isfinite(history[-1]["valid_perplexity"])


def contexts(ids: Tensor, positions: Tensor, memory_size: int) -> Tensor:
    """The memory for predicting ids[m + 1]: ids[m], ids[m - 1], ..., the current word first. (B, N)"""
    return ids[positions.unsqueeze(1) - torch.arange(memory_size, device=ids.device)]


def process_group() -> tuple[int, int]:
    """(rank, world size): (0, 1) without torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def summed_over_processes(counts: dict[str, float]) -> dict[str, float]:
    rank, world = process_group()
    if world == 1:
        return counts
    nccl = dist.get_backend() == "nccl"  # NCCL reduces GPU tensors only: this process's (join_processes)
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    totals = torch.tensor([counts["nll"], counts["tokens"]], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return {"nll": float(totals[0]), "tokens": int(totals[1])}


@torch.no_grad()
def evaluate_lm(model: MemN2NLM, ids: Tensor, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """Summed counts {nll, tokens} over every position with a full memory, in order; under
    torch.distributed each process takes its share of the positions and the counts are summed."""
    rank, world = process_group()
    core = getattr(model, "module", model)  # the model inside DistributedDataParallel
    core.eval()
    N = core.config.memory_size
    nll, tokens = torch.zeros((), dtype=torch.float64, device=sums_device(ids.device)), 0  # summed on the device: no wait per batch
    for positions in torch.arange(N - 1, len(ids) - 1, device=ids.device)[rank::world].split(batch_size):
        nll += core(contexts(ids, positions, N), ids[positions + 1]).loss.to(nll.device)
        tokens += len(positions)
    core.train()
    return summed_over_processes({"nll": float(nll), "tokens": tokens})


class PlainStep:
    """One step of the Sec. 5.1 recipe with the library: the model's summed cross-entropy,
    autograd, `clip_grad_norm_` and SGD at ``lr``; returns the loss. The plain PyTorch twin of
    `lm_kernel.SGDStep`, called as it is, and the only engine on a GPU and across processes
    (``world`` of them: DDP averages the gradients over processes, the recipe sums over the batch)."""

    def __init__(self, model: MemN2NLM, world: int = 1):
        self.model, self.world = model, world
        self.optimizer = torch.optim.SGD(model.parameters())

    def __call__(self, context: Tensor, target: Tensor, lr: float, max_norm: float) -> Tensor:
        out = self.model(context, target)
        self.optimizer.zero_grad(set_to_none=True)
        (out.loss * self.world).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        return out.loss.detach()


def fit_lm(model: MemN2NLM, corpus: Corpus, config: LMTrainConfig, state: LMState, generator: torch.Generator,
           checkpoint: Callable[[LMState], None], on_epoch: Callable[[dict], None] | None = None,
           on_progress: Callable[[dict], None] | None = None, kernel: bool | None = None, *,
           metrics: Callable[[dict], dict]) -> LMState:
    """Train from ``state`` until the learning rate falls below ``min_lr``, ``max_epochs``, the
    weights diverge (`stops`) or ``max_steps``; checkpoint after each epoch, at ``max_steps`` and
    every ``checkpoint_every`` steps within an epoch (then ``on_progress`` with the epoch's
    progress and training perplexity so far): a run killed loses at most that many steps, and
    resumes to the weights an uninterrupted run reaches. ``kernel``: the step's engine, the compiled kernel's fused step
    (`lm_kernel.SGDStep`) or `PlainStep`; None: the kernel where it runs (one process on the CPU,
    a C compiler). ``metrics``: the task's, from summed counts {nll, tokens}."""
    rank, world = process_group()
    train, valid = corpus.ids["train"], corpus.ids["valid"]
    N = getattr(model, "module", model).config.memory_size
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    model.train()
    cuda, sums = train.device.type == "cuda", sums_device(train.device)
    if kernel is None:
        kernel = world == 1 and lm_kernel.usable(train, *model.parameters())
    sgd_step = lm_kernel.SGDStep(model) if kernel else PlainStep(model, world)
    while not state.finished:
        started = time.perf_counter()
        # This process's share of the epoch's cost, summed on the device: no wait for the device
        # each step (on a GPU, the steps queue up while the host draws the next positions).
        epoch_nll = torch.tensor(state.epoch_nll, dtype=torch.float64, device=sums)
        saved_at = state.step  # a checkpoint holds this step already (0, or where a resumed run stopped)
        while state.step < steps_per_epoch:
            stop = config.max_steps and state.steps >= config.max_steps
            if stop or (state.step != saved_at and state.step % config.checkpoint_every == 0):
                total = summed_over_processes({"nll": float(epoch_nll), "tokens": 0})["nll"]
                state.epoch_nll = total if rank == 0 else 0.0  # rank 0 carries the epoch's cost so far
                _add_seconds(state, started, cuda)
                started = time.perf_counter()
                checkpoint(state)
                if stop:
                    return state
                epoch_nll = torch.tensor(state.epoch_nll, dtype=torch.float64, device=sums)
                if on_progress:
                    so_far = metrics({"nll": total, "tokens": state.step * config.batch_size})["perplexity"]
                    on_progress({"epoch": state.epoch + 1, "step": state.step, "steps": steps_per_epoch,
                                 "train_perplexity": so_far})
            # Every process draws the same positions and trains on its share of them.
            positions = torch.randint(N - 1, len(train) - 1, (config.batch_size,), generator=generator)[rank::world]
            positions = positions.pin_memory().to(train.device, non_blocking=True) if cuda else positions.to(train.device)
            context, target = contexts(train, positions, N), train[positions + 1]
            epoch_nll += sgd_step(context, target, state.lr, config.max_grad_norm).to(sums)
            state.step, state.steps = state.step + 1, state.steps + 1
        state.epoch_nll = float(epoch_nll)
        _add_seconds(state, started, cuda)
        train_nll = summed_over_processes({"nll": state.epoch_nll, "tokens": 0})["nll"]
        train_figures = metrics({"nll": train_nll, "tokens": steps_per_epoch * config.batch_size})
        valid_figures = metrics(evaluate_lm(model, valid))
        record = {"epoch": state.epoch + 1, "lr": state.lr, "train_perplexity": train_figures["perplexity"],
                  "valid_perplexity": valid_figures["perplexity"], "valid_loss": valid_figures["loss"],
                  "train_seconds": state.epoch_seconds}
        state.history.append(record)
        state.epoch, state.step, state.epoch_nll, state.epoch_seconds = state.epoch + 1, 0, 0.0, 0.0
        state.lr = next_lr(state.history, state.lr, config)
        state.finished = stops(state, config)
        checkpoint(state)
        if on_epoch:
            on_epoch(record)
    return state


def _add_seconds(state: LMState, started: float, cuda: bool) -> None:
    """Count the time since ``started`` as training time."""
    if cuda:
        torch.cuda.synchronize()  # the queued steps are done: the time is theirs
    seconds = time.perf_counter() - started
    state.seconds += seconds
    state.epoch_seconds += seconds


def load_lm(directory: Path) -> tuple[MemN2NLM, dict, list[str]]:
    """(model, config, words) of a language-model run; UserError when it is missing or corrupt."""
    return load_language_model(directory)


def join_processes(device: str | torch.device) -> torch.device:
    """This process's device (devices.rank_device); under torchrun, its GPU made the current one
    and the process group joined with the backend for that device (NCCL for CUDA, gloo for the CPU)."""
    device = rank_device(device)
    if under_torchrun() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # so that NCCL and torch.cuda.synchronize use this process's GPU
        dist.init_process_group(backend_for(device))
    return device


def train_lm(task: str, data_dir: Path, out: Path, model_config: dict, config: LMTrainConfig, resume: bool = False,
             on_epoch: Callable[[dict], None] | None = None, device: str | torch.device = "auto",
             on_progress: Callable[[dict], None] | None = None) -> dict:
    """Train (or, with ``resume``, continue) a language model in ``out``, on ``device``; the summary.

    Started by `torchrun --nproc_per_node N -m memn2n_cli train ...`, it trains with
    DistributedDataParallel (each process on its own GPU with NCCL, or on the CPU with gloo): the
    same result as one process with the same global batch, to floating-point tolerance. ``out``
    has one writer throughout (`writing`): this process, or the first of those torchrun started."""
    device = join_processes(device)
    resume_it = f"resume it (`memn2n train {task} --resume {out}`, or resume=True) to go on from there"
    with writing(out, resume_it) if process_group()[0] == 0 else nullcontext():
        if process_group()[1] > 1:
            dist.barrier()  # the others read the run once its writer holds it (and has finished a killed save)
        return _train_lm(task, data_dir, out, model_config, config, resume, on_epoch, device, on_progress)


def _train_lm(task: str, data_dir: Path, out: Path, model_config: dict, config: LMTrainConfig, resume: bool,
              on_epoch: Callable[[dict], None] | None, device: torch.device,
              on_progress: Callable[[dict], None] | None) -> dict:
    corpus = get_task(task).load(data_dir)
    recorded = data_record(data_dir, get_task(task).data_files(data_dir))
    generator = torch.Generator()
    if resume and (out / CONFIG_FILE).exists():
        model, saved, words = load_lm(out)
        check_same_data(saved.get("data"), recorded, out)
        if words != corpus.words:
            raise UserError("the data's vocabulary differs from the run's", data_dir)
        saved_state, generator_state = read_lm_state(out)
        state = config_from(LMState, saved_state, "state", out / STATE_FILE)
        state.epoch_nll = state.epoch_nll if process_group()[0] == 0 else 0.0  # see fit_lm
        generator.set_state(generator_state)
        differ = sorted(k for k, v in model_config.items() if saved["model"].get(k) != v)
        if differ:
            raise UserError(f"holds a model with {differ[0]} {saved['model'].get(differ[0])}, not {model_config[differ[0]]}: "
                            "resume with the run's model options", out)
        saved_config = config_from(LMTrainConfig, saved.get("training"), "training", out / CONFIG_FILE)
        config = replace(saved_config, max_epochs=config.max_epochs, max_steps=config.max_steps,
                         checkpoint_every=config.checkpoint_every)  # how far, and how often to save: not the recipe
        finished, state.finished = state.finished, stops(state, config)  # --max-epochs may have grown, or shrunk
        if state.finished and not finished and state.step:
            raise ArgumentError("max_epochs", f"{{}} is {config.max_epochs}, but the run has trained "
                                f"{counted(state.epoch, 'epoch')} and {counted(state.step, 'step')} of the next: "
                                f"it cannot end inside an epoch; resume with a larger {{}} ({state.epoch + 1} or more)",
                                out)
        log.info("%s: resuming at epoch %d, step %d", out, state.epoch + 1, state.step)
    else:
        torch.manual_seed(config.seed)
        model = MemN2NLM(LMConfig(vocab_size=len(corpus.words), **model_config))
        generator.manual_seed(config.seed)
        state = LMState(lr=config.lr)
    check_lengths(corpus, model.config.memory_size, data_dir)
    rank, world = process_group()
    model.to(device)
    corpus.ids = {split: ids.to(device) for split, ids in corpus.ids.items()}
    trained = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    history = History(out, "step", state.steps, state.history) if rank == 0 else None  # from where the checkpoint is
    steps_per_epoch, metrics = math.ceil(len(corpus.ids["train"]) / config.batch_size), get_task(task).metrics
    data = {**recorded, "tokens": {k: len(v) for k, v in corpus.ids.items()},
            "generated": is_generated(data_dir),  # the stand-in of `memn2n data generate`, not the real corpus
            # What a prompt shorter than the memory is read after (continue_text): text, as in training.
            "last_words": [corpus.words[i] for i in corpus.ids["train"][-model.config.memory_size:].tolist()]}

    # The test perplexity, once the run has finished: for its card and the summary, computed once (a
    # run resumed finished trains no further, and its card has it).
    test = (read_card(out) or {}).get("results", {}).get("test_perplexity") if state.finished else None

    def checkpoint(state: LMState) -> None:
        nonlocal test
        # A finished run's card has its test perplexity (every process takes part in evaluating it).
        test = metrics(evaluate_lm(trained, corpus.ids["test"]))["perplexity"] if state.finished else None
        if rank == 0:  # one process writes
            if len(state.history) > history.epochs:
                history.append({**state.history[-1], "step": state.steps, "seconds": state.seconds})
            elif state.step and (history.last or {}).get("step") != state.steps:  # a checkpoint within the epoch
                so_far = metrics({"nll": state.epoch_nll, "tokens": state.step * config.batch_size})["perplexity"]
                history.append({"epoch": state.epoch + 1, "step_in_epoch": state.step, "steps_in_epoch": steps_per_epoch,
                                "step": state.steps, "lr": state.lr, "train_perplexity": so_far, "seconds": state.seconds})
            run_config = new_run_config(task, asdict(model.config), asdict(config), data)
            files = {CARD_FILE: lm_card(run_config, state.history, test, state.finished),
                     **language_model_files(model, run_config, corpus.words, asdict(state), generator.get_state())}
            write_run(out, {HISTORY_FILE: history.content(), **files} if state.finished else files)

    if state.finished and test is None:
        # Finished by this resume's --max-epochs, or a card without the figure (a diverged run's is
        # not finite, which a card writes as null): evaluated and written as a finished run.
        checkpoint(state)
    state = fit_lm(trained, corpus, config, state, generator, checkpoint, on_epoch if rank == 0 else None,
                   on_progress if rank == 0 else None, metrics=metrics)
    if history is not None:
        history.close()
    valid = state.history[-1]["valid_perplexity"] if state.history else None  # the last epoch's
    return {"task": task, "epochs": state.epoch, "steps": state.steps, "lr": state.lr, "finished": state.finished,
            "diverged": diverged(state.history), "valid_perplexity": valid, "test_perplexity": test,
            "train_seconds": state.seconds,
            "tokens_per_second": state.steps * config.batch_size / max(state.seconds, 1e-9),
            "history": state.history, "run": str(out)}


@torch.no_grad()
def attention_by_position(model: MemN2NLM, ids: Tensor, batch_size: int = EVAL_BATCH) -> Tensor:
    """Figure 3: the average attention weight of each memory position (0 = the current word) at
    each hop over every position of ``ids``, each hop's row scaled to a maximum of 1. (K, N)"""
    model.eval()
    N = model.config.memory_size
    total = torch.zeros(model.config.hops, N, dtype=torch.float64, device=sums_device(ids.device))
    for positions in torch.arange(N - 1, len(ids) - 1, device=ids.device).split(batch_size):
        total += model(contexts(ids, positions, N)).attention.sum(0).to(total.device).double()
    return total / total.max(dim=1, keepdim=True).values


def continue_text(model: MemN2NLM, words: list[str], prompt: list[str], count: int,
                  before: list[str] = ()) -> list[tuple[str, float]]:
    """The ``count`` most likely next words, one at a time, each with its probability.

    A prompt shorter than the memory is read after the last words of ``before`` (a run's: the
    last N words of its training text, which end a sentence), so that the model gets a memory
    like every one it was trained with (Section 5: the N previous words, all N slots always
    holding text) and the prompt starts a sentence. The same prompt preceded by those words
    predicts the same words. Without ``before`` (a run written before it was recorded), a short
    prompt gets a memory of its own words only, as it did then."""
    word_ids = {w: i for i, w in enumerate(words)}
    unknown = sorted({w for w in prompt if w not in word_ids})
    if unknown:
        log.warning("words this model never saw, read as %s: %s", UNK, ", ".join(unknown))
    N = model.config.memory_size
    filling = list(before)[-(N - len(prompt)):] if before and len(prompt) < N else []  # the slots the prompt leaves
    text = [word_ids.get(w, word_ids.get(UNK, 0)) for w in filling + prompt]
    model.eval()
    produced = []
    with torch.no_grad():
        for _ in range(count):
            context = torch.tensor([text[::-1][:N]], device=model.W.weight.device)  # the current word first
            probabilities = torch.softmax(model(context).logits[0], -1)
            best = int(probabilities.argmax())
            produced.append((words[best], float(probabilities[best])))
            text.append(best)
    return produced


def check_lengths(corpus: Corpus, memory_size: int, data_dir: Path) -> None:
    """A UserError for a split too short to predict one word with a full memory."""
    for split, ids in corpus.ids.items():
        if len(ids) <= memory_size:
            raise UserError(f"the {split} split has {len(ids)} words: a memory of {memory_size} needs at least "
                            f"{memory_size + 1}", data_dir)


def run_corpus(run: Path, data_dir: Path | None) -> tuple[MemN2NLM, dict, Corpus]:
    """A language-model run's model, config and corpus (from ``data_dir``, else where it was
    trained), checked to have the run's vocabulary and splits long enough for its memory."""
    model, config, words = load_lm(run)
    data_dir = resolve_data_dir(config["task"], run_data_dir(config, data_dir))
    corpus = get_task(config["task"]).load(data_dir)
    if corpus.words != words:
        raise UserError("the data's vocabulary differs from the run's", data_dir)
    check_lengths(corpus, model.config.memory_size, data_dir)
    return model, config, corpus


def evaluate_lm_run(run: Path, split: str, data_dir: Path | None, device: str | torch.device = "auto") -> dict:
    """Perplexity of ``run`` on ``split`` of its corpus, computed on ``device``: {split, perplexity,
    loss, tokens, run}."""
    check_split(split)
    device = resolve_device(device)
    model, config, corpus = run_corpus(run, data_dir)
    counts = evaluate_lm(model.to(device), corpus.ids[split].to(device))
    return {"split": split, **get_task(config["task"]).metrics(counts), "tokens": counts["tokens"], "run": str(run)}


@dataclass
class LMRun:
    """A trained language model, as a notebook uses it: ``memn2n.load(path)``, then
    ``run.continue_text("the company said")``. ``words`` is its vocabulary (id i is words[i])."""

    path: Path
    model: MemN2NLM
    config: dict
    words: list[str]

    @classmethod
    def load(cls, path: str | Path) -> LMRun:
        model, config, words = load_lm(Path(path))
        return cls(Path(path), model, config, words)

    @property
    def task(self):
        """The registered task the model was trained on: its tokenizer reads prompts."""
        return get_task(self.config["task"])

    def continue_text(self, prompt: str, count: int = NEXT_WORDS) -> list[tuple[str, float]]:
        """The ``count`` most likely next words after ``prompt``, one at a time, with their probabilities."""
        check_text(prompt, "prompt")
        check_next_words(count, "count")
        words = self.task.tokenize(prompt)
        if not words:
            raise UserError(f"the prompt has no words to continue: {prompt[:40]!r}")
        return continue_text(self.model, self.words, words, count, self.config["data"].get("last_words", []))

    def evaluate(self, split: str = "test", data_dir: str | Path | None = None, device: str = "auto") -> dict:
        """Perplexity on ``split`` of the corpus it was trained on (or ``data_dir``), as `memn2n eval`."""
        return evaluate_lm_run(self.path, split, None if data_dir is None else Path(data_dir), device)
