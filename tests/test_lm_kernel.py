"""The language model's compiled kernel against the paper's equations, written out plainly."""

from __future__ import annotations

import logging

import pytest
import torch

from memn2n_cli import kernels
from memn2n_cli.lm import kernel as lm_kernel
from memn2n_cli.configs import LMConfig
from memn2n_cli.model import MemN2NLM


def paper_loss(model: MemN2NLM, context: torch.Tensor, target: torch.Tensor, params: dict) -> torch.Tensor:
    """Section 5 one example and one hop at a time, in float64: memories m_i = A x_i + T_A(i) and
    c_i = C x_i + T_C(i) of the previous words, the constant query u^1 = 0.1, layer-wise tying
    u^{k+1} = H u^k + o^k with a ReLU on the units past ``linear_dim``, logits W u^{K+1}; the
    cross-entropy summed over the batch."""
    c = model.config
    A, C, T_A, T_C, H, W = (params[n] for n in ("A.weight", "C.weight", "T_A", "T_C", "H.weight", "W.weight"))
    loss = torch.zeros((), dtype=torch.float64)
    for words, next_word in zip(context.tolist(), target.tolist()):
        m = [A[x] + T_A[i] for i, x in enumerate(words)]
        mem_c = [C[x] + T_C[i] for i, x in enumerate(words)]
        u = torch.full((c.dim,), c.query, dtype=torch.float64)
        for _ in range(c.hops):
            p = torch.softmax(torch.stack([m_i @ u for m_i in m]), 0)  # (1)
            o = sum(p_i * c_i for p_i, c_i in zip(p, mem_c))  # (2)
            v = H @ u + o
            u = torch.cat([v[: c.linear_dim], torch.relu(v[c.linear_dim:])])
        loss = loss - torch.log_softmax(W @ u, 0)[next_word]
    return loss


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


def kernel_and_plain(model: MemN2NLM, context: torch.Tensor, target: torch.Tensor, monkeypatch) -> list[tuple]:
    """(loss, attention, gradients) of the model on the kernel, then on the plain PyTorch path."""
    results = []
    for use_kernel in (True, False):
        monkeypatch.setattr(lm_kernel, "usable", lambda *tensors, use=use_kernel: use)
        model.zero_grad()
        out = model(context, target)
        out.loss.backward()
        results.append((out.loss.detach(), out.attention, {n: p.grad.clone() for n, p in model.named_parameters()}))
    return results


@pytest.mark.parametrize("dim, hops, memory, width, linear_dim", [(12, 3, 9, 9, 5), (16, 7, 13, 13, 8), (9, 2, 20, 6, 0)])
def test_kernel_and_plain_path_give_the_papers_loss_and_gradients(compiled_kernels, dim, hops, memory, width, linear_dim, monkeypatch):
    """Sizes off the kernel's blocks of 8 rows and of 8 lanes, and fewer hops than 8; a small
    vocabulary, so that words repeat within a memory and their gradients add up; the last case a
    memory shorter than memory_size."""
    torch.manual_seed(hops)
    model = MemN2NLM(LMConfig(vocab_size=23, dim=dim, hops=hops, memory_size=memory, linear_dim=linear_dim,
                              init_std=0.3))  # large weights: sharp attention, and ReLUs that cut
    context, target = torch.randint(0, 23, (6, width)), torch.randint(0, 23, (6,))
    params = {n: p.detach().double().requires_grad_() for n, p in model.named_parameters()}
    reference = paper_loss(model, context, target, params)
    reference_grads = torch.autograd.grad(reference, list(params.values()))
    for loss, attention, grads in kernel_and_plain(model, context, target, monkeypatch):
        assert relative_error(loss, reference) < 1e-5
        for (name, grad), expected in zip(grads.items(), reference_grads):
            assert relative_error(grad, expected) < 1e-5, name
        assert attention.shape == (6, hops, width)
    (_, kernel_attention, _), (_, plain_attention, _) = kernel_and_plain(model, context, target, monkeypatch)
    torch.testing.assert_close(kernel_attention, plain_attention, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_norm", [1e9, 0.5])
def test_the_fused_training_step_is_autograd_clipping_and_sgd_on_the_plain_path(compiled_kernels, max_norm, monkeypatch):
    """`SGDStep` against the recipe's step written with the library: the plain PyTorch path, its
    gradients by autograd, `clip_grad_norm_`, SGD. Each parameter's change is compared (not the
    parameters, which a wrong gradient would hardly move), with the gradient rescaled (0.5) and not.
    Words repeat within and across memories, and some words of the vocabulary are not in the batch."""
    torch.manual_seed(1)
    config = LMConfig(vocab_size=37, dim=13, hops=5, memory_size=11, linear_dim=6, init_std=0.3)
    fused, plain = MemN2NLM(config), MemN2NLM(config)
    plain.load_state_dict(fused.state_dict())
    before = {n: p.detach().clone() for n, p in fused.named_parameters()}
    context, target = torch.randint(0, 30, (9, 11)), torch.randint(0, 37, (9,))
    loss = lm_kernel.SGDStep(fused)(context, target, lr=0.5, max_norm=max_norm)
    monkeypatch.setattr(lm_kernel, "usable", lambda *tensors: False)
    out = plain(context, target)
    out.loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(plain.parameters(), max_norm)
    torch.optim.SGD(plain.parameters(), lr=0.5).step()
    assert (norm > max_norm) == (max_norm < 1)
    assert relative_error(loss, out.loss) < 1e-6
    for (name, new), expected in zip(fused.named_parameters(), plain.parameters()):
        change, expected_change = new.detach() - before[name], expected.detach() - before[name]
        assert relative_error(change, expected_change) < 5e-5, name  # both in float32: each ~1e-5 from float64
    unused = sorted(set(range(37)) - set(context.flatten().tolist()))
    assert unused and torch.equal(fused.A.weight[unused], before["A.weight"][unused])


def test_the_relu_cuts_units_in_these_cases(compiled_kernels):
    """Without units that the ReLU sets to zero, the test above could not see a wrong ReLU split."""
    torch.manual_seed(3)
    model = MemN2NLM(LMConfig(vocab_size=23, dim=12, hops=3, memory_size=9, linear_dim=5, init_std=0.3))
    context = torch.randint(0, 23, (6, 9))
    weights = [model.A.weight, model.C.weight, model.T_A, model.T_C, model.H.weight]
    U, _ = lm_kernel.hops_forward(context, torch.full((12,), 0.1), *[w.detach() for w in weights], 3, 5)
    U = U[..., :12]
    assert (U[:, 1:, 5:] == 0).any() and (U[:, 1:, 5:] > 0).any() and (U[:, 1:, :5] < 0).any()


def test_kernel_results_do_not_depend_on_the_number_of_threads(compiled_kernels):
    """The kernel's own sums (each example's hops; each word's gradient, in one fixed order) are the
    same bit for bit with any number of threads. (PyTorch's matrix products may split differently.)"""
    torch.manual_seed(0)
    A, C = torch.randn(40, 20, requires_grad=True), torch.randn(40, 20, requires_grad=True)
    T_A, T_C, H = torch.randn(30, 20), torch.randn(30, 20), torch.randn(20, 20) * 0.2
    context, grad = torch.randint(0, 40, (33, 30)), torch.randn(33, 20)
    threads = torch.get_num_threads()
    results = []
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        u, attention = lm_kernel.LayerwiseHops.apply(context, torch.full((33, 20), 0.1), A, C, T_A, T_C, H, 4, 10)
        results.append([u, attention, *torch.autograd.grad(u, [A, C], grad)])
    torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_without_a_compiler_the_plain_path_trains_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    lm_kernel.library.cache_clear(), kernels.build.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="memn2n"):
            model = MemN2NLM(LMConfig(vocab_size=10, dim=8, hops=2, memory_size=5, linear_dim=4))
            out = model(torch.randint(0, 10, (3, 5)), torch.tensor([1, 2, 3]))
            out.loss.backward()
        assert model.A.weight.grad is not None and torch.isfinite(out.loss)
        assert "plain PyTorch path" in caplog.text and not list(tmp_path.rglob("*.so"))
    finally:
        lm_kernel.library.cache_clear(), kernels.build.cache_clear()


def test_the_kernel_refuses_word_ids_outside_the_vocabulary_as_the_plain_path_does(compiled_kernels, monkeypatch):
    model = MemN2NLM(LMConfig(vocab_size=10, dim=8, hops=2, memory_size=5))
    for context in (torch.tensor([[1, 2, 10, 3, 4]]), torch.tensor([[1, -1, 2, 3, 4]])):
        for use_kernel in (True, False):
            monkeypatch.setattr(lm_kernel, "usable", lambda *tensors, use=use_kernel: use)
            with pytest.raises(IndexError):
                model(context)
    with pytest.raises(IndexError, match="temporal embeddings"):
        lm_kernel.LayerwiseHops.apply(torch.zeros(1, 6, dtype=torch.long), torch.zeros(1, 8), model.A.weight,
                                      model.C.weight, model.T_A, model.T_C, model.H.weight, 2, 4)


def test_the_fused_step_refuses_what_its_c_code_would_misread(compiled_kernels):
    """Target ids outside the vocabulary, ids not int64 (read as int64 they would point anywhere),
    and a target count other than the batch's, before any weight changes."""
    model = MemN2NLM(LMConfig(vocab_size=10, dim=8, hops=2, memory_size=5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step, context = lm_kernel.SGDStep(model), torch.tensor([[1, 2, 3, 4, 5]])
    with pytest.raises(IndexError, match="target word ids"):
        step(context, torch.tensor([10]), 0.1, 50.0)
    for context, target in ((context.int(), torch.tensor([1])), (context, torch.tensor([1], dtype=torch.int32)),
                            (context.repeat(2, 1), torch.tensor([1]))):
        with pytest.raises(ValueError, match="int64 word ids"):
            step(context, target, 0.1, 50.0)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
