"""Train and evaluate question-answering runs (bAbI, jsonl, a plugin's task): the plain functions
behind `memn2n train` and `memn2n eval`.

train_qa:  the task's files -> questions -> validation split -> vocabulary -> tensors
           -> MemN2N -> fit (restarts.py) -> error per task and split -> run directory
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from memn2n_cli.checkpoint import (CONFIG_FILE, METRICS_FILE, check_same_data, config_from, data_record, file_checksums,
                                   is_model_dir, load_model, model_dirs, model_files, new_run_config, read_json,
                                   read_model_files, read_progress, run_data_dir, write_json, write_progress, write_run,
                                   writing)
from memn2n_cli.configs import SPLITS, ModelConfig, ModelOptions, TrainConfig, check_split
from memn2n_cli.devices import resolve_device
from memn2n_cli.errors import Diverged, UserError
from memn2n_cli.history import HISTORY_FILE, History
from memn2n_cli.model_card import CARD_FILE, qa_card
from memn2n_cli.model import MemN2N
from memn2n_cli.qa.restarts import fit_restarts
from memn2n_cli.qa.training import diverged, evaluate
from tasks.qa import PASS_ERROR, Encoded, QATask, Question, Vocabulary, encode, metrics, qa_task, split_validation

log = logging.getLogger("memn2n")


def load_splits(task: QATask, data_dir: Path, task_ids: list[int], fraction: float,
                split_seed: int) -> dict[str, list[Question]]:
    """The task's questions by split: validation questions of its own, else ``fraction`` of the
    training stories held out."""
    train = task.read(data_dir, task_ids, "train")
    valid = task.read_validation(data_dir, task_ids)
    train_part, valid_part = split_validation(train, fraction, split_seed) if valid is None else (train, valid)
    return {"train": train_part, "valid": valid_part, "test": task.read(data_dir, task_ids, "test"), "all_train": train}


def encode_splits(splits: dict[str, list[Question]], vocab: Vocabulary, memory_size: int, device) -> dict[str, Encoded]:
    encoded = {name: encode(splits[name], vocab, memory_size).to(device) for name in SPLITS}
    unknown = sum((e.unknown_words for e in encoded.values()), start=Counter())
    if unknown:
        examples = ", ".join(sorted(unknown)[:5])
        log.warning("%d occurrences of %d words never seen in training were read as the nil word (%s%s)",
                    sum(unknown.values()), len(unknown), examples, ", ..." if len(unknown) > 5 else "")
    return encoded


def error_table(counts: dict[str, dict[int, dict]], task: QATask) -> list[dict]:
    """Rows {task, train_error, valid_error, test_error} in percent from per-split, per-task
    counts, with the figures the task adds of its own (`QATask.count`) on the last split."""
    numbered = sorted(next(iter(counts.values())))
    last = list(counts)[-1]
    return [{"task": t, **{f"{split}_error": task.metrics(c[t])["error"] for split, c in counts.items() if t in c},
             **(own_figures(task, counts[last][t]) if t in counts[last] else {})} for t in numbered]


def own_figures(task: QATask, counts: dict) -> dict:
    """The figures ``task`` reports beyond the shared ones of `tasks.qa.metrics`."""
    shared = metrics(counts)
    return {k: v for k, v in task.metrics(counts).items() if k not in shared}


def summarize(rows: list[dict], run: Path, task: str, split: str = "test") -> dict:
    key = f"{split}_error"
    return {"task": task, "tasks": rows, f"mean_{key}": sum(r[key] for r in rows) / len(rows),
            "failed_tasks": sum(r[key] > PASS_ERROR for r in rows), "run": str(run)}


@dataclass
class Prepared:
    """What every model trained on the same tasks and data shares: vocabulary, tensors, sizes."""

    task: str  # the registered task's name
    task_ids: list[int]
    data_dir: Path
    data: dict  # what the run records of its data (`data_record`)
    vocab: Vocabulary
    encoded: dict[str, Encoded]
    model_config: ModelConfig


def model_memory(options: ModelOptions, train: list[Question]) -> int:
    """The memory a model of ``options`` has: --memory-size, or the longest training story where
    that is shorter (the config.json of a run records this one)."""
    return min(options.memory_size, max(len(q.story) for q in train))


def prepare(task: str, task_ids: list[int], data_dir: Path, options: ModelOptions, config: TrainConfig,
            device: torch.device) -> Prepared:
    """Read the tasks, hold out validation stories, build the vocabulary and encode every split."""
    qa = qa_task(task)
    splits = load_splits(qa, data_dir, task_ids, config.validation_fraction, config.split_seed)
    vocab = qa.vocabulary(splits["all_train"])
    memory_size = model_memory(options, splits["all_train"])
    encoded = encode_splits(splits, vocab, memory_size, device)
    model_config = ModelConfig(vocab_size=len(vocab.words), answer_word_ids=vocab.answer_word_ids(),
                               **{**asdict(options), "memory_size": memory_size},
                               sentence_size=encoded["train"].sentences.shape[1])
    data = data_record(data_dir, qa.data_files(data_dir, task_ids))
    return Prepared(task, task_ids, data_dir, data, vocab, encoded, model_config)


def build_model(prepared: Prepared, seed: int, device: torch.device) -> MemN2N:
    torch.manual_seed(seed)  # weights from N(0, init_std), repeatable
    return MemN2N(prepared.model_config).to(device)


def trained_files(model: MemN2N, prepared: Prepared, config: TrainConfig, metrics: dict) -> tuple[list[dict], dict]:
    """Evaluate ``model`` on every split: its error rows, and its run directory's files (with
    everything `eval` and `predict` need) as bytes."""
    task = qa_task(prepared.task)
    rows = error_table({split: evaluate(model, prepared.encoded[split], task=task, answers=prepared.vocab.answers)
                        for split in SPLITS}, task)
    run_config = new_run_config(prepared.task, vars(model.config), asdict(config), prepared.data,
                                tasks=prepared.task_ids, joint=len(prepared.task_ids) > 1)
    return rows, {CARD_FILE: qa_card(run_config, rows),
                  **model_files(model.cpu(), run_config, prepared.vocab, {"tasks": rows, **metrics})}


def train_model(task: str, task_ids: list[int], data_dir: Path, directory: Path, options: ModelOptions,
                config: TrainConfig, device: torch.device, on_epoch: Callable[[dict], None] | None = None,
                resume: bool = False) -> list[dict]:
    """Train one model on ``task_ids`` (one task, or several jointly) and save it in ``directory``.
    Its progress is saved after every epoch; with ``resume`` it goes on from there, to the model
    an uninterrupted run trains."""
    prepared = prepare(task, task_ids, data_dir, options, config, device)
    model = build_model(prepared, config.seed, device)
    settings = {"task": task, "tasks": task_ids, "model": asdict(options), "training": asdict(config),
                "data": prepared.data}
    start = read_progress(directory, settings, model) if resume else None
    earlier = start.histories[0] if start else []
    if start is not None:
        log.info("%s: resuming after epoch %d", directory, len(earlier))
    history_file = History(directory, "epoch", len(earlier), earlier)  # from where the progress is
    started, before = time.perf_counter(), history_file.seconds

    def on_record(restart: int, record: dict) -> None:
        history_file.append({**record, "seconds": before + time.perf_counter() - started})
        if on_epoch:
            on_epoch(record)

    history = fit_restarts([model], prepared.encoded["train"], prepared.encoded["valid"], config, [config.seed],
                           on_record, start, lambda progress: write_progress(directory, progress, settings))[0]
    seconds = time.perf_counter() - started
    epochs = len(history) - len(earlier)  # trained in this sitting
    speed = {"train_seconds": before + seconds,  # every sitting's, as history.jsonl counts them
             "examples_per_second": epochs * len(prepared.encoded["train"]) / seconds}
    rows, files = trained_files(model, prepared, config, {**speed, "history": history})
    write_run(directory, {HISTORY_FILE: history_file.content(), **files}, finished=True)
    history_file.close()
    if diverged(history):
        raise Diverged(directory, len(history))
    return rows


def finished_rows(directory: Path, task: str, task_ids: list[int], data_dir: Path, options: ModelOptions,
                  config: TrainConfig) -> list[dict] | None:
    """The results of a model already trained in ``directory`` on these tasks with these options
    (for --resume); None when there is none; a UserError when it is another one, or damaged."""
    if not (directory / CONFIG_FILE).exists():
        return None
    saved = read_model_files(directory)[0]  # checked as it would be loaded: a damaged model is not kept
    if (saved.get("task"), saved.get("tasks")) != (task, task_ids):
        raise UserError(f"holds a model of {saved.get('task')} task(s) {saved.get('tasks')}, not of {task} {task_ids}: "
                        "resume it with the same --task and --joint, or train into another --out", directory)
    wanted = {**asdict(options), "memory_size": model_memory(options, qa_task(task).read(data_dir, task_ids, "train"))}
    chosen = {k: v for k, v in saved.get("model", {}).items() if k in wanted}
    if saved.get("training") != asdict(config) or chosen != wanted:
        raise UserError("holds a model trained with other options; resume with the same options or another --out", directory)
    check_same_data(saved["data"], data_record(data_dir, qa_task(task).data_files(data_dir, task_ids)), directory)
    rows = read_json(directory / METRICS_FILE).get("tasks")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("test_error"), (int, float)) for r in rows):
        raise UserError("corrupt metrics: 'tasks' must be the model's rows of figures", directory / METRICS_FILE)
    return rows


def check_layout(out: Path, labels: list[str]) -> None:
    """Refuse to resume ``out`` as a run of the models ``labels`` when it holds others: a run of one
    model per task resumed as one model (or the reverse, or with other tasks) would leave its
    models orphaned and its summary replaced."""
    held = sorted(d.name for d in out.iterdir() if is_model_dir(d, in_training=True)) if out.is_dir() else []
    if len(labels) == 1 and held:
        raise UserError(f"holds one model per task ({', '.join(held)}): resume it with the same --task and --joint", out)
    one = is_model_dir(out, in_training=True)
    if len(labels) > 1 and (one or set(held) - set(labels)):
        what = "one model" if one else f"models of {', '.join(sorted(set(held) - set(labels)))}"
        raise UserError(f"holds {what} not asked for: resume it with the same --task and --joint", out)


def resolve_data(task: QATask, data_dir: Path | None, task_ids: list[int]) -> Path:
    """The folder of the data (``data_dir``, else where the task finds it), checked to hold the files
    of every one of ``task_ids`` before anything trains: a run of one model per task, or a sweep,
    must not train task 1 for an hour and then stop at task 2's missing file."""
    folder = task.resolve_data_dir(data_dir)
    task.data_files(folder, task_ids)  # a UserError naming the first file missing
    return folder


def model_groups(task_ids: list[int], joint: bool) -> list[tuple[str, list[int]]]:
    """The models a run trains, each named: one for all the tasks ("joint"), or one per task ("qa1", ...)."""
    if joint and len(task_ids) < 2:
        raise UserError("--joint needs at least two tasks (e.g. --task all)")
    return [("joint", task_ids)] if joint else [(f"qa{t}", [t]) for t in task_ids]


def train_qa(task: str, task_ids: list[int], joint: bool, data_dir: Path | None, out: Path, options: ModelOptions,
             config: TrainConfig, device: str = "auto", on_epoch: Callable[[str, dict], None] | None = None,
             resume: bool = False) -> dict:
    """One model per numbered task of ``task``, or one model for all of them (``joint``). Returns
    the summary. ``resume``: models already complete in ``out`` (trained with the same options) are
    kept. ``out`` has this process as its one writer throughout (`writing`)."""
    with writing(out, f"resume it (`memn2n train ... --resume {out}`, or resume=True) to go on from there"):
        return _train_qa(task, task_ids, joint, data_dir, out, options, config, device, on_epoch, resume)


def _train_qa(task: str, task_ids: list[int], joint: bool, data_dir: Path | None, out: Path, options: ModelOptions,
              config: TrainConfig, device: str, on_epoch: Callable[[str, dict], None] | None, resume: bool) -> dict:
    groups = model_groups(task_ids, joint)  # a bad combination fails before any data is read
    torch_device = resolve_device(device)
    if resume:
        check_layout(out, [label for label, _ in groups])
    data_dir = resolve_data(qa_task(task), data_dir, task_ids)
    rows = []
    for label, group in groups:
        directory = out if len(groups) == 1 else out / label
        done = finished_rows(directory, task, group, data_dir, options, config) if resume else None
        if done is not None:
            log.info("%s: already trained, kept", directory)
            rows += done
            continue
        shown = label if len(groups) > 1 or qa_task(task).numbered() else task  # "qa1", or "jsonl"
        rows += train_model(task, group, data_dir, directory, options, config, torch_device,
                            (lambda record, shown=shown: on_epoch(shown, record)) if on_epoch else None, resume)
    summary = summarize(rows, out, task)
    if len(groups) > 1:
        write_json(out / METRICS_FILE, summary)
    return summary


def evaluate_run(run: Path, split: str = "test", data_dir: Path | None = None, device: str = "auto") -> dict:
    """Re-compute the error of every model in ``run`` on ``split`` from its saved files and the data,
    with where its attention lands: the share of questions whose most-attended sentence is a
    supporting fact, per hop (``attention_on_support``) and at some hop (``..._any``)."""
    check_split(split)
    rows, torch_device = [], resolve_device(device)
    for directory in model_dirs(run):
        model, config, vocab = load_model(directory)
        task = qa_task(config["task"])
        source = task.resolve_data_dir(run_data_dir(config, data_dir))
        training = config_from(TrainConfig, config.get("training"), "training", directory / CONFIG_FILE)
        splits = load_splits(task, source, config["tasks"], training.validation_fraction, training.split_seed)
        recorded = config["data"]["files"]
        used = file_checksums(task.data_files(source, config["tasks"]))
        if used != recorded:
            log.warning("%s: the data files differ from the ones this model was trained on", source)
        encoded = encode(splits[split], vocab, model.config.memory_size).to(torch_device)
        counts = evaluate(model.to(torch_device), encoded, task=task, answers=vocab.answers)
        for number, of_task in sorted(counts.items()):
            figures = task.metrics(of_task)
            rows.append({"task": number, f"{split}_error": figures["error"],
                         **{k: v for k, v in figures.items() if k not in ("error", "loss")}})
    if not rows:
        raise UserError(f"holds no {split} questions (trained with --validation-fraction 0?)", run)
    return summarize(rows, run, config["task"], split)
