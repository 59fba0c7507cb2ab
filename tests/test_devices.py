"""The device path without a GPU: naming a device, and every step, evaluation and prediction of both
kinds of model computing on a device that is not the CPU (tests/standin_device.py), where CUDA's
rules refuse a CPU tensor beside a device tensor; how often a step waits for the device; the
device and backend of each process under torchrun."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from memn2n_cli import devices
from memn2n_cli.configs import LMConfig, LMTrainConfig, ModelOptions, TrainConfig
from memn2n_cli.errors import UserError
from memn2n_cli.lm import training as lm_training
from memn2n_cli.lm.training import LMState, attention_by_position, continue_text, evaluate_lm, fit_lm
from memn2n_cli.model import MemN2NLM
from memn2n_cli.qa.inference import predictions
from memn2n_cli.qa.restarts import fit_restarts
from memn2n_cli.qa.runs import build_model, load_splits, prepare, qa_task
from memn2n_cli.qa.training import evaluate, fit
from memn2n_cli.sweeps import lanes, ray_resources, run_on_lanes
from tasks import get_task
from tasks.lm import Corpus
from tasks.qa import Encoded
from tests.standin_device import DEVICE, OnDevice, on_device, waits


@pytest.fixture
def gpu_host(monkeypatch):
    """PyTorch as it is on a host with two CUDA devices (and no Apple GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def cpu_host(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("name, expected", [("auto", "cuda"), ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1")])
def test_device_names_on_a_gpu_host(gpu_host, name, expected):
    assert devices.resolve_device(name) == torch.device(expected)


@pytest.mark.parametrize("name, cli, fragment", [
    ("tpu", True, "--device is auto, cpu, cuda, cuda:N or mps, not 'tpu'"),
    ("", False, "device= is auto, cpu, cuda, cuda:N or mps, not ''"),
    ("meta", True, "not 'meta'"),
    ("cpu:1", True, "not 'cpu:1'"),
    ("cuda:7", True, "--device cuda:7: there is no such device; this machine has 2 (cuda:0 to cuda:1)"),
    ("mps", False, "device= mps: Apple's Metal (mps) is not available here"),
])
def test_device_names_refused_in_one_line_naming_the_argument(gpu_host, name, cli, fragment):
    """As the command line names the argument (`--device`) and as Python does (`device=`)."""
    from memn2n_cli.errors import flag

    with pytest.raises(UserError) as refused:
        devices.resolve_device(name)
    message = refused.value.render(flag) if cli else str(refused.value)
    assert fragment in message and "\n" not in message


def test_auto_is_the_cpu_and_cuda_is_refused_without_a_gpu(cpu_host):
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="device= cuda: PyTorch finds no CUDA device here"):
        devices.resolve_device("cuda")


def test_mps_is_taken_where_available_but_never_by_auto(cpu_host, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.resolve_device("mps") == torch.device("mps")
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.sums_device(torch.device("mps")) == torch.device("cpu")  # no float64 there


# ---- every tensor on the device of its inputs


def _few(data: Encoded, n: int) -> Encoded:
    """The first ``n`` questions of ``data`` (its sentence table whole)."""
    return Encoded(**{k: v[:n] if isinstance(v, torch.Tensor) and k != "sentences" else v for k, v in vars(data).items()})


@pytest.fixture(scope="module")
def task2(en_dir):
    return prepare("babi", [2], en_dir, ModelOptions(), TrainConfig(), torch.device("cpu"))


def _built_on(device: torch.device, build):
    """``build()``'s model with its parameters made on ``device``: `Module.to` keeps a model's
    Parameter objects (and the hooks on them) when it moves a model to a GPU, but makes new ones
    when it moves it to the stand-in device."""
    with device:
        return build()


def _on_device(model: torch.nn.Module) -> bool:
    return all(isinstance(t, OnDevice) for t in [*model.parameters(), *model.buffers()])


@pytest.mark.parametrize("encoding", ["pe", "bow"])
def test_question_answering_trains_evaluates_and_predicts_on_the_device(task2, en_dir, encoding):
    """Restarts trained together (vmapped), `fit`, evaluation and prediction, with random noise and
    linear start: each completes with every tensor on the device, and `fit` learns what it learns
    on the CPU."""
    task = dataclasses.replace(task2, model_config=dataclasses.replace(task2.model_config, encoding=encoding))
    config = TrainConfig(epochs=1, ls_epochs=1, batch_size=8, random_noise=0.1)
    train, valid = _few(task.encoded["train"], 20), _few(task.encoded["valid"], 10)
    questions = load_splits(qa_task("babi"), en_dir, [2], 0.1, 0)["test"][:5]
    on_cpu = build_model(task, 1, torch.device("cpu"))
    cpu_history = fit(on_cpu, train, valid, config)
    with on_device():
        restarts = [_built_on(DEVICE, lambda: build_model(task, seed, DEVICE)) for seed in (1, 2)]
        histories = fit_restarts(restarts, train.to(DEVICE), valid.to(DEVICE), config, [1, 2])
        model = _built_on(DEVICE, lambda: build_model(task, 1, DEVICE))
        history = fit(model, train.to(DEVICE), valid.to(DEVICE), config)
        counts = evaluate(model, valid.to(DEVICE))
        answers = list(predictions(model, task.vocab, questions))
    assert all(_on_device(m) for m in [*restarts, model])
    assert [len(h) for h in histories] == [2, 2]
    assert [r["train_loss"] for r in history] == pytest.approx([r["train_loss"] for r in cpu_history], rel=1e-5)
    assert counts[2]["total"] == 10
    assert [p.answer for p in answers] == [p.answer for p in predictions(on_cpu, task.vocab, questions)]


def test_the_language_model_trains_evaluates_and_continues_text_on_the_device():
    """The plain training step (not the CPU kernel's), evaluation, Figure 3's attention and text
    continuation: on the device, and the training cost what it is on the CPU."""
    generator = torch.Generator().manual_seed(0)
    ids = {split: torch.randint(0, 30, (n,), generator=generator) for split, n in (("train", 200), ("valid", 60))}
    config = LMTrainConfig(batch_size=16, max_epochs=1)
    words = [f"w{i}" for i in range(30)]
    results = []
    for device in (torch.device("cpu"), DEVICE):
        with on_device():
            torch.manual_seed(0)
            model = _built_on(device, lambda: MemN2NLM(LMConfig(vocab_size=30, dim=8, hops=2, memory_size=5)))
            corpus = Corpus(words, {split: t.to(device) for split, t in ids.items()})
            state = fit_lm(model, corpus, config, LMState(lr=0.01), torch.Generator().manual_seed(0), lambda state: None,
                           metrics=get_task("ptb").metrics)
            counts = evaluate_lm(model, corpus.ids["valid"])
            figure = attention_by_position(model, corpus.ids["valid"])
            produced = continue_text(model, words, ["w1", "w2"], 3)
        assert _on_device(model) == (device == DEVICE)
        results.append((state.history[0]["train_perplexity"], counts["tokens"], figure.shape, [w for w, _ in produced]))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    assert results[1][1:] == results[0][1:]


def test_a_restarts_step_waits_for_the_device_at_most_three_times(task2):
    """One step of restarts trained together (the plain path, as on a GPU): the batch's longest story
    and sentence (one read), its distinct sentences for all restarts (one unique) and the longest
    restart's share of them (one read); nothing per restart."""
    config = TrainConfig(epochs=1, linear_start=False, batch_size=8, validation_fraction=0.0)
    seen = []
    for steps in (1, 2):
        train = _few(task2.encoded["train"], 8 * steps)
        with on_device():
            fit_restarts([_built_on(DEVICE, lambda: build_model(task2, seed, DEVICE)) for seed in (1, 2, 3)], train.to(DEVICE),
                         _few(train, 0).to(DEVICE), config, [1, 2, 3])
            seen.append(waits.copy())
    per_step = seen[1] - seen[0]
    assert sum(per_step.values()) <= 3, per_step


# ---- one device per process under torchrun


@pytest.mark.parametrize("name, rank, expected, backend", [
    ("auto", "1", "cuda:1", "nccl"), ("cuda", "1", "cuda:1", "nccl"), ("cpu", "1", "cpu", "gloo"),
    ("cuda:0", "1", "cuda:0", "nccl")])
def test_each_process_under_torchrun_takes_its_own_gpu_and_a_backend_for_its_device(gpu_host, monkeypatch, name, rank,
                                                                                     expected, backend):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", rank)
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(lm_training.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(lm_training.dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    device = lm_training.join_processes(name)
    assert device == torch.device(expected)
    assert calls == ([("set_device", device)] if device.type == "cuda" else []) + [("init", backend)]


def test_one_process_joins_no_group(gpu_host, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(lm_training.dist, "init_process_group", lambda backend: pytest.fail("no group for one process"))
    assert lm_training.join_processes("auto") == torch.device("cuda")


def test_torchrun_on_a_cpu_host_refuses_cuda_in_one_line(cpu_host, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="^device= cuda: PyTorch finds no CUDA device here"):
        lm_training.join_processes("cuda")


# ---- sweeps: a worker per GPU


def test_a_sweep_on_a_gpu_host_has_one_worker_per_gpu_and_ray_tasks_ask_for_theirs(gpu_host):
    assert lanes(devices.resolve_device("auto"), 16) == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert lanes(torch.device("cuda", 1), 16) == [torch.device("cuda", 1)]
    assert lanes(torch.device("cpu"), 3) == [torch.device("cpu")] * 3
    assert ray_resources(torch.device("cuda")) == {"num_cpus": 1, "num_gpus": 1}
    assert ray_resources(torch.device("cpu")) == {"num_cpus": 1, "num_gpus": 0}


def test_jobs_on_lanes_take_a_free_lane_each_and_never_share_one():
    busy, seen, lock = set(), [], threading.Lock()

    def job(n: int, device: torch.device) -> int:
        with lock:
            assert device not in busy, f"{device} given to two jobs at once"
            busy.add(device)
            seen.append(device)
        time.sleep(0.02)
        with lock:
            busy.remove(device)
        return n * n

    results = {}
    gpus = [torch.device("cuda", 0), torch.device("cuda", 1)]
    with ThreadPoolExecutor(4) as pool:  # more threads than lanes: the lanes alone limit the jobs
        run_on_lanes(pool, gpus, [(job, (n,)) for n in range(6)], results.__setitem__)
    assert results == {n: n * n for n in range(6)}
    assert set(seen) == set(gpus) and len(seen) == 6
