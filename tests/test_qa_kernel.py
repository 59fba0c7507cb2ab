"""The compiled bAbI kernel against the plain PyTorch model, variant by variant."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from torch.func import stack_module_state

from memn2n_cli import kernels
from memn2n_cli.qa import kernel as qa_kernel
from memn2n_cli.configs import TrainConfig
from memn2n_cli.model import MemN2N
from memn2n_cli.qa.runs import ModelOptions, prepare
from memn2n_cli.qa.batches import make_batch
from memn2n_cli.qa.training import random_noise_time


@pytest.fixture(scope="module")
def tasks_1_and_19(en_dir):
    """Real stories of two tasks (19: long sentences and 5-slot memories beside task 1's longer ones)."""
    return prepare("babi", [1, 19], en_dir, ModelOptions(memory_size=12), TrainConfig(), torch.device("cpu"))


def assert_close(fast: torch.Tensor, plain: torch.Tensor, what: str) -> None:
    """Within 1e-5 of the plain path, relative to the whole tensor's norm: both add in float32, in
    different orders, so a single small entry of a sum of large terms may differ more than that."""
    assert fast.shape == plain.shape, what
    plain = plain.detach()
    assert float((fast - plain).norm()) <= 1e-5 * float(plain.norm()) + 1e-7, what


VARIANTS = {  # name: ModelConfig fields
    "PE adjacent": {},
    "PE paper formula, masked": {"pe_formula": "paper", "empty_memories": "masked"},
    "BoW, no temporal": {"encoding": "bow", "temporal": False},
    "layer-wise": {"tying": "layerwise"},
    "layer-wise ReLU, masked": {"tying": "layerwise", "relu": True, "empty_memories": "masked"},
    "ReLU, one hop": {"relu": True, "hops": 1},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_kernel_gives_the_models_loss_logits_and_gradients(compiled_kernels, tasks_1_and_19, variant):
    """Three restarts with their own weights, examples, time noise and linear-start phase: the
    kernel's summed loss, logits and every gradient are what autograd gives each model alone."""
    config = dataclasses.replace(tasks_1_and_19.model_config, **VARIANTS[variant])
    data = tasks_1_and_19.encoded["train"]
    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(MemN2N(config))
    generator = torch.Generator().manual_seed(0)
    index = torch.stack([torch.randperm(len(data), generator=generator)[:24] for _ in models])  # (R, B)
    times = [random_noise_time(data.memory_size, data.memory.shape[1], 0.1, generator) for _ in models]
    linear = torch.tensor([True, False, False])
    params, _ = stack_module_state(models)
    step = qa_kernel.KernelStep(config, models[0].answer_word_ids, data)
    loss, logits, grads = step(params, linear, index, torch.stack(times))
    for r, model in enumerate(models):
        batch = make_batch(data, index[r], times[r] if config.temporal else None)
        out = model(**batch, linear_start=bool(linear[r]))
        out.loss.backward()
        assert float(loss[r]) == pytest.approx(out.loss.item(), rel=1e-5)
        assert_close(logits[r], out.logits, f"{variant}: logits of restart {r}")
        for name, parameter in model.named_parameters():
            assert_close(grads[name][r], parameter.grad, f"{variant}: gradient of {name}, restart {r}")


def test_a_restart_trains_the_same_whichever_restarts_share_its_steps(compiled_kernels, tasks_1_and_19):
    """Each restart is computed on its own: trained with others or alone, its weights are the same
    bits, so a sweep's results do not depend on how its restarts are split among workers."""
    from memn2n_cli.qa.restarts import fit_restarts
    from memn2n_cli.qa.runs import build_model

    config, cpu = TrainConfig(epochs=1, ls_epochs=1), torch.device("cpu")
    data = tasks_1_and_19.encoded
    together = [build_model(tasks_1_and_19, seed, cpu) for seed in (0, 1, 2)]
    fit_restarts(together, data["train"], data["valid"], config, [0, 1, 2])
    for seed in (0, 2):
        alone = build_model(tasks_1_and_19, seed, cpu)
        fit_restarts([alone], data["train"], data["valid"], config, [seed])
        assert all(torch.equal(value, together[seed].state_dict()[name]) for name, value in alone.state_dict().items())


def test_answers_never_seen_in_training_add_nothing(compiled_kernels, tasks_1_and_19):
    """An answer of -1 (the test set's answers unknown to training) adds no loss and no gradient."""
    config = tasks_1_and_19.model_config
    data = dataclasses.replace(tasks_1_and_19.encoded["train"])
    data.answer = data.answer.clone()
    data.answer[:8] = -1
    torch.manual_seed(0)
    params, _ = stack_module_state([MemN2N(config)])
    step = qa_kernel.KernelStep(config, torch.tensor(config.answer_word_ids), data)
    with_unknown = step(params, torch.tensor([False]), torch.arange(16).unsqueeze(0))
    known_only = step(params, torch.tensor([False]), torch.arange(8, 16).unsqueeze(0))
    assert float(with_unknown[0]) == pytest.approx(float(known_only[0]), rel=1e-6)
    for name in params:
        torch.testing.assert_close(with_unknown[2][name], known_only[2][name])


def test_without_a_compiler_training_takes_the_plain_path_and_says_so(tmp_path, monkeypatch, caplog, tasks_1_and_19):
    from memn2n_cli.qa.restarts import fit_restarts
    from memn2n_cli.qa.runs import build_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    qa_kernel.library.cache_clear(), kernels.build.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="memn2n"):
            model = build_model(tasks_1_and_19, 0, torch.device("cpu"))
            history = fit_restarts([model], tasks_1_and_19.encoded["train"], tasks_1_and_19.encoded["valid"],
                                   TrainConfig(epochs=1, ls_epochs=1), [0])
        assert len(history[0]) == 2 and "plain PyTorch path" in caplog.text and not list(tmp_path.rglob("*.so"))
    finally:
        qa_kernel.library.cache_clear(), kernels.build.cache_clear()
