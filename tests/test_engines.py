"""One training step, two engines: the compiled kernel and plain PyTorch, called alike and trained
both ways. The plain engine is the path every GPU runs; here it is checked against the kernel,
and for question answering against `fit`, on every run. Also the kernels' boundary (what a bad
call raises) and their serial build (without OpenMP), which gives the threaded build's numbers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.func import stack_module_state

from memn2n_cli.lm import kernel as lm_kernel
from memn2n_cli.qa import kernel as qa_kernel
from memn2n_cli.configs import LMConfig, LMTrainConfig, TrainConfig
from memn2n_cli.lm.training import LMState, PlainStep, fit_lm
from memn2n_cli.model import MemN2N, MemN2NLM
from memn2n_cli.qa.restarts import WORD_EMBEDDINGS, VmappedStep, fit_restarts
from memn2n_cli.qa.runs import ModelOptions, build_model, prepare
from memn2n_cli.qa.training import fit, random_noise_time
from tasks import get_task
from tasks.lm import Corpus

pytestmark = pytest.mark.usefixtures("compiled_kernels")


@pytest.fixture(scope="module")
def task1(en_dir):
    return prepare("babi", [1], en_dir, ModelOptions(memory_size=12), TrainConfig(), torch.device("cpu"))


def restarts(config, seeds=(1, 2, 3)) -> list[MemN2N]:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(MemN2N(config))
    return models


@pytest.mark.parametrize("variant", [{}, {"tying": "layerwise", "relu": True, "empty_memories": "masked"}],
                         ids=["adjacent", "layer-wise"])
def test_qa_engines_give_the_same_step(task1, variant):
    """The same weights, examples, time noise and linear-start phases, three restarts: the kernel's
    and the vmapped model's summed losses, logits and gradients agree; so do their evaluation steps
    (one batch for all restarts, no gradients)."""
    config = dataclasses.replace(task1.model_config, **variant)
    data, models = task1.encoded["train"], restarts(config)
    params, buffers = stack_module_state(models)
    generator = torch.Generator().manual_seed(0)
    index = torch.stack([torch.randperm(len(data), generator=generator)[:24] for _ in models])
    time = torch.stack([random_noise_time(data.memory_size, data.memory.shape[1], 0.3, generator) for _ in models])
    linear = torch.tensor([True, False, False])
    kernel, plain = qa_kernel.KernelStep(config, models[0].answer_word_ids, data), VmappedStep(models[0], buffers, data)
    (k_loss, k_logits, k_grads), (p_loss, p_logits, p_grads) = (step(params, linear, index, time)
                                                                for step in (kernel, plain))
    torch.testing.assert_close(k_loss, p_loss.double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_logits, p_logits.detach(), rtol=1e-4, atol=1e-5)
    assert k_grads.keys() == p_grads.keys()
    for name in WORD_EMBEDDINGS & p_grads.keys():
        p_grads[name][..., 0, :] = 0  # the nil word's, which the kernel leaves out and fit_restarts zeroes
    for name in k_grads:
        torch.testing.assert_close(k_grads[name], p_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    shared = torch.arange(40)
    (k_loss, k_logits, k_none), (p_loss, p_logits, p_none) = (step(params, linear, shared, backward=False)
                                                                for step in (kernel, plain))
    assert k_none is None and p_none is None
    torch.testing.assert_close(k_loss, p_loss.detach().double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_logits, p_logits.detach(), rtol=1e-4, atol=1e-5)


def test_qa_trains_alike_on_either_engine_and_as_fit_does(task1):
    """Two restarts, a linear-start epoch and a softmax one with random noise, on each engine; and
    each seed alone through `fit`, the recipe written plainly: the same weights and losses."""
    config, seeds = TrainConfig(epochs=1, ls_epochs=1), [3, 7]
    data = task1.encoded
    trained = {}
    for kernel in (True, False):
        models = [build_model(task1, seed, torch.device("cpu")) for seed in seeds]
        histories = fit_restarts(models, data["train"], data["valid"], config, seeds, kernel=kernel)
        trained[kernel] = models, histories
    for r, seed in enumerate(seeds):
        alone = build_model(task1, seed, torch.device("cpu"))
        history = fit(alone, data["train"], data["valid"], TrainConfig(**{**vars(config), "seed": seed}))
        for models, histories in trained.values():
            for name, value in alone.state_dict().items():
                torch.testing.assert_close(models[r].state_dict()[name], value, atol=1e-4, rtol=1e-4, msg=name)
            for key in ("train_loss", "valid_loss"):
                assert [h[key] for h in histories[r]] == pytest.approx([h[key] for h in history], rel=1e-4), key
    assert not torch.equal(trained[True][0][0].embedding, build_model(task1, seeds[0], torch.device("cpu")).embedding)


def lm_model() -> MemN2NLM:
    torch.manual_seed(0)
    return MemN2NLM(LMConfig(vocab_size=41, dim=12, hops=3, memory_size=9, linear_dim=5, init_std=0.3))


def lm_fit(kernel: bool, steps: int = 6) -> MemN2NLM:
    model = lm_model()
    generator = torch.Generator().manual_seed(1)
    corpus = Corpus(words=[str(i) for i in range(41)],
                    ids={"train": torch.randint(0, 41, (400,), generator=generator),
                         "valid": torch.randint(0, 41, (60,), generator=generator)})
    config = LMTrainConfig(lr=0.5, batch_size=16, max_steps=steps, max_grad_norm=5.0)
    fit_lm(model, corpus, config, LMState(lr=config.lr), torch.Generator().manual_seed(2), lambda state: None,
           kernel=kernel, metrics=get_task("ptb").metrics)
    return model


@pytest.mark.parametrize("hops_in_the_kernel", [True, False], ids=["cpu-plain", "gpu-plain"])
def test_lm_trains_alike_on_either_engine(monkeypatch, hops_in_the_kernel):
    """Six steps of `fit_lm` (gradients clipped in some) on the fused kernel step and on the plain
    one: the same weights. The plain step's model runs its hops in the kernel on the CPU; with
    ``gpu-plain`` in `model.multi_hop`, as on a GPU."""
    fused = lm_fit(kernel=True)
    if not hops_in_the_kernel:
        monkeypatch.setattr(lm_kernel, "usable", lambda *tensors: False)
    plain = lm_fit(kernel=False)
    start = lm_model()
    for (name, a), b, before in zip(fused.named_parameters(), plain.parameters(), start.parameters()):
        assert not torch.equal(a, before), name
        torch.testing.assert_close(a - before, b - before, rtol=1e-4, atol=1e-5, msg=name)


def test_the_plain_lm_step_is_the_fused_one():
    """`PlainStep` and `lm_kernel.SGDStep` share a call: the same loss and weights after a step."""
    torch.manual_seed(4)
    config = LMConfig(vocab_size=37, dim=13, hops=4, memory_size=11, linear_dim=6, init_std=0.3)
    fused, plain = MemN2NLM(config), MemN2NLM(config)
    plain.load_state_dict(fused.state_dict())
    context, target = torch.randint(0, 37, (9, 11)), torch.randint(0, 37, (9,))
    losses = [step(context, target, 0.5, 0.5) for step in (lm_kernel.SGDStep(fused), PlainStep(plain))]
    torch.testing.assert_close(losses[0], losses[1].double(), rtol=1e-5, atol=0)
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_the_serial_build_gives_the_threaded_builds_numbers(task1, monkeypatch):
    """Built without OpenMP (what a compiler without it gets), each kernel computes the same numbers.
    Not always the same bits: -ffp-contract=fast lets the compiler fuse multiply-adds where it
    chooses, and the two builds may choose apart (the QA gradients differed by one float32 rounding
    on an AVX-512 EPYC, bit for bit equal on the machine before it); a wrong serial path is far
    outside float32 rounding."""
    assert qa_kernel.library(threads=False)._name != qa_kernel.library()._name  # another build
    config = task1.model_config
    data, models = task1.encoded["train"], restarts(config)
    params, _ = stack_module_state(models)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:60].view(3, 20)
    linear = torch.tensor([False, True, False])
    results = [qa_kernel.KernelStep(config, models[0].answer_word_ids, data, threads)(params, linear, index)
               for threads in (True, False)]
    torch.testing.assert_close(results[0][:2], results[1][:2], rtol=1e-6, atol=0)
    for name in params:
        torch.testing.assert_close(results[0][2][name], results[1][2][name], rtol=1e-6, atol=1e-6, msg=name)

    torch.manual_seed(0)
    model = MemN2NLM(LMConfig(vocab_size=40, dim=20, hops=4, memory_size=30, linear_dim=10, init_std=0.3))
    state = {name: value.clone() for name, value in model.state_dict().items()}
    context, target = torch.randint(0, 40, (33, 30)), torch.randint(0, 40, (33,))
    weights, build = [], lm_kernel.library
    for threads in (True, False):
        monkeypatch.setattr(lm_kernel, "library", lambda threads=threads: build(threads))
        model.load_state_dict(state)
        loss = lm_kernel.SGDStep(model)(context, target, 0.5, 5.0)
        weights.append((loss, {name: value.clone() for name, value in model.state_dict().items()}))
    torch.testing.assert_close(weights[0][0], weights[1][0], rtol=1e-6, atol=0)
    for name in state:
        torch.testing.assert_close(weights[0][1][name], weights[1][1][name], rtol=1e-6, atol=1e-6, msg=name)


def test_the_qa_kernels_boundary_refuses_what_its_c_code_would_misread(task1):
    """A bad call is an exception before the C code runs, never a crash or a wrong answer."""
    config, data = task1.model_config, task1.encoded["train"]
    models = restarts(config, (1, 2))
    params, _ = stack_module_state(models)
    step = qa_kernel.KernelStep(config, models[0].answer_word_ids, data)
    linear, index = torch.tensor([False, False]), torch.arange(8).view(2, 4)
    step(params, linear, index)  # as it should be
    as_float64 = {**params, "embedding": params["embedding"].double()}
    with pytest.raises(ValueError, match="qa_step: argument 13"):
        step(as_float64, linear, index)
    not_contiguous = {**params, "embedding": params["embedding"].transpose(2, 3).contiguous().transpose(2, 3)}
    with pytest.raises(ValueError, match="non-contiguous"):
        step(not_contiguous, linear, index)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(2, 4"):
        step({**params, "embedding": params["embedding"][:, :3]}, linear, index)
    with pytest.raises(IndexError, match="example indices"):
        step(params, linear, torch.tensor([[0, 1], [2, -1]]))
    time = torch.zeros(2, len(data), data.memory.shape[1], dtype=torch.int64)
    time[1, 5, 0] = -1  # restart 1's example 5
    with pytest.raises(IndexError, match="time indices"):
        step(params, linear, index, time)
    for field, value, message in (("answer", len(config.answer_word_ids), "answers"),
                                  ("sentences", config.vocab_size, "word ids"),
                                  ("memory", len(data.sentences), "sentence rows")):
        bad = dataclasses.replace(data, **{field: getattr(data, field).clone()})
        getattr(bad, field).view(-1)[5] = value
        with pytest.raises(IndexError, match=message):
            qa_kernel.KernelStep(config, models[0].answer_word_ids, bad)
    with pytest.raises(IndexError, match="answer word ids"):
        qa_kernel.KernelStep(config, torch.tensor(config.answer_word_ids[:-1] + [config.vocab_size]), data)


def test_the_lm_kernels_boundary_refuses_what_its_c_code_would_misread():
    torch.manual_seed(0)
    A, C, H = torch.randn(10, 8), torch.randn(10, 8), torch.randn(8, 8)
    T_A, T_C, context, query = torch.randn(5, 8), torch.randn(5, 8), torch.randint(0, 10, (3, 5)), torch.zeros(8)
    lm_kernel.hops_forward(context, query, A, C, T_A, T_C, H, 2, 4)  # as it should be
    with pytest.raises(ValueError, match="lm_forward: argument 8"):
        lm_kernel.hops_forward(context, query, A, C.double(), T_A, T_C, H, 2, 4)
    with pytest.raises(ValueError, match="lm_forward: argument 6"):
        lm_kernel.hops_forward(context.int(), query, A, C, T_A, T_C, H, 2, 4)
    with pytest.raises(ValueError, match="non-contiguous"):
        lm_kernel.hops_forward(context, query, A, C, T_A, T_C, H.T, 2, 4)
    with pytest.raises(ValueError, match=r"C must have shape \(10, 8\)"):
        lm_kernel.hops_forward(context, query, A, C[:9], T_A, T_C, H, 2, 4)
    with pytest.raises(ValueError, match=r"H must have shape \(8, 8\)"):
        lm_kernel.hops_forward(context, query, A, C, T_A, T_C, H[:, :4].contiguous(), 2, 4)


def test_a_diverged_restart_stops_and_the_others_train_on(task1):
    """A restart whose training loss is not finite (its weights lost) trains no further epoch, on
    either engine and in `fit`; the other restarts train their epochs as if it were not there."""
    config, seeds = TrainConfig(epochs=3, linear_start=False, random_noise=0.0), [3, 7]
    for kernel in (True, False):
        models = [build_model(task1, seed, torch.device("cpu")) for seed in seeds]
        with torch.no_grad():
            models[1].embedding.fill_(1e30)  # every score infinite: the loss is NaN from the first step
        histories = fit_restarts(models, task1.encoded["train"], task1.encoded["valid"], config, seeds, kernel=kernel)
        assert [len(h) for h in histories] == [3, 1]
        assert math.isnan(histories[1][0]["train_loss"]) and all(math.isfinite(h["train_loss"]) for h in histories[0])
        healthy = build_model(task1, seeds[0], torch.device("cpu"))
        alone = fit(healthy, task1.encoded["train"], task1.encoded["valid"], TrainConfig(**{**vars(config), "seed": 3}))
        assert [h["train_loss"] for h in histories[0]] == pytest.approx([h["train_loss"] for h in alone], rel=1e-4)
    lost = build_model(task1, seeds[1], torch.device("cpu"))
    with torch.no_grad():
        lost.embedding.fill_(1e30)
    assert len(fit(lost, task1.encoded["train"], task1.encoded["valid"], config)) == 1


def test_a_diverged_question_answering_run_is_one_line_and_exit_1(cli, en_dir, tmp_path):
    """--lr 1e30 is a valid number that no model survives: one line naming the run and the epoch,
    exit 1 (a failed run, not bad input), after the first epoch rather than all of them."""
    out = tmp_path / "diverged"
    result = cli("train", "babi", "--task", "1", "--data-dir", en_dir, "--no-linear-start", "--lr", "1e30",
                 "--epochs", "5", "--out", out)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {out}: diverged in epoch 1 (training loss not finite) and stopped; train it again, into another "
        "folder, with a smaller learning rate")
    assert len((out / "history.jsonl").read_text().splitlines()) == 1
