"""The model's equations against hand computations (Sections 2 and 4.1)."""

from __future__ import annotations

import math

import pytest
import torch

from memn2n_cli.configs import ModelConfig
from memn2n_cli.model import MemN2N, MemoryNetwork, memory_hop, multi_hop, position_encoding
from memn2n_cli.qa.training import random_noise_time


def l_table(words, dim, formula, sentence_size=0):
    """l_kj = a_j + g_k b_j from position_encoding, as a (..., J, d) table."""
    a, b, g = position_encoding(torch.tensor(words), dim, formula, sentence_size)
    return a.unsqueeze(-1) + g * b.unsqueeze(-1)


def test_position_encoding_matches_the_paper_formula_by_hand():
    # l_kj = (1 - j/J) - (k/d)(1 - 2j/J) with J = 3, d = 2, worked out by hand:
    # j=1: k=1 -> 2/3 - 1/2*1/3 = 1/2,  k=2 -> 2/3 - 1/3 = 1/3
    # j=2: k=1 -> 1/3 + 1/2*1/3 = 1/2,  k=2 -> 1/3 + 1/3 = 2/3
    # j=3: k=1 -> 0 + 1/2 = 1/2,         k=2 -> 0 + 1 = 1
    expected = torch.tensor([[0.5, 1 / 3], [0.5, 2 / 3], [0.5, 1.0]])
    assert torch.allclose(l_table([1, 2, 3], 2, "paper"), expected)


def test_position_encoding_uses_each_sentences_own_length():
    # A 2-word sentence padded to width 3 uses J = 2, not the padded width.
    # J = 2, d = 2.  j=1: 1 - 2j/J = 0, so l = 1 - 1/2 = 1/2 for k = 1, 2.
    #                j=2: 1 - j/J = 0, 1 - 2j/J = -1, so l = k/d: 1/2, 1.
    l = l_table([1, 2, 0], 2, "paper")
    assert torch.allclose(l[:2], torch.tensor([[0.5, 0.5], [0.5, 1.0]]))


def test_official_position_encoding_by_hand():
    # l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), d = 2, J = 3:
    # j=1: k=1 -> 1 + 4(-1/2)(-1)/6 = 4/3,  k=2 -> 1 + 4(1/2)(-1)/6 = 2/3;  j=2 -> 1, 1;  j=3 -> 2/3, 4/3
    expected = torch.tensor([[4 / 3, 2 / 3], [1.0, 1.0], [2 / 3, 4 / 3]])
    assert torch.allclose(l_table([1, 2, 3], 2, "official", sentence_size=3), expected)
    # J is the padded size, whatever the sentence's own length: a 1-word sentence gets row j = 1.
    assert torch.allclose(l_table([7, 0, 0], 2, "official", sentence_size=3)[0], expected[0])


def test_memory_hop_by_hand():
    u = torch.tensor([[1.0, 0.0]])
    m = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    c = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    u2, p = memory_hop(u, m, c)
    e = math.e
    p_expected = torch.tensor([[e / (e + 1), 1 / (e + 1)]])  # softmax of scores (1, 0)      Eq. (1)
    o = p_expected[0, 0] * torch.tensor([1.0, 2.0]) + p_expected[0, 1] * torch.tensor([3.0, 4.0])  # Eq. (2)
    assert torch.allclose(p, p_expected) and torch.allclose(u2[0], torch.tensor([1.0, 0.0]) + o)


def test_linear_start_drops_the_softmax_and_mask_zeroes_padding():
    u = torch.tensor([[2.0, 1.0]])
    m = torch.tensor([[[1.0, 1.0], [0.5, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    _, p = memory_hop(u, m, m, mask, linear=True)
    assert torch.equal(p, torch.tensor([[3.0, 1.0, 0.0]]))


def test_padded_slots_get_exactly_zero_attention_and_do_not_change_the_answer():
    torch.manual_seed(0)
    u, m, c = torch.randn(4, 5), torch.randn(4, 6, 5), torch.randn(4, 6, 5)
    mask = torch.arange(6) < torch.tensor([[1], [3], [6], [2]])
    out, p = multi_hop(u, [(m, c)] * 3, mask)
    assert torch.all(p[~mask.unsqueeze(1).expand_as(p)] == 0)
    assert torch.allclose(p.sum(-1), torch.ones(4, 3))
    m2, c2 = m.clone(), c.clone()
    m2[~mask], c2[~mask] = 100.0, -100.0  # whatever the padding holds
    assert torch.allclose(multi_hop(u, [(m2, c2)] * 3, mask)[0], out)


def _bow_model(tying, hops=3, relu=False, empty_memories="zero"):
    torch.manual_seed(1)
    return MemN2N(ModelConfig(vocab_size=7, answer_word_ids=[4, 5, 6], dim=4, hops=hops, memory_size=3,
                              encoding="bow", temporal=False, tying=tying, relu=relu, empty_memories=empty_memories))


STORY = torch.tensor([[[1, 2, 0], [3, 1, 0], [0, 0, 0]]])  # (B=1, M=3, J=3): two sentences, one empty slot
QUERY = torch.tensor([[2, 3, 0]])
# By default the empty slot is a zero vector in the softmax, as in the authors' code: embedding all three
# slots gives exactly that (the nil word's embedding is zero). Masked, only the two sentences count.
SLOTS = {"zero": STORY[0], "masked": STORY[0, :2]}


@pytest.mark.parametrize("empty_memories", ["zero", "masked"])
def test_adjacent_tying_by_hand(empty_memories):
    """A^1 = B = embedding[0], C^k = A^{k+1} = embedding[k], W^T = C^K (Sec. 2.2)."""
    model = _bow_model("adjacent", empty_memories=empty_memories)
    E = model.embedding.detach()
    assert E.shape[0] == 4  # K + 1 distinct matrices for K = 3 hops, one tensor
    u = E[0][QUERY[0]].sum(0)
    for k in range(3):
        m = E[k][SLOTS[empty_memories]].sum(1)
        c = E[k + 1][SLOTS[empty_memories]].sum(1)
        p = torch.softmax(m @ u, 0)
        u = u + p @ c
    expected = u @ E[3][[4, 5, 6]].T
    assert torch.allclose(model(STORY, torch.tensor([2]), QUERY).logits[0], expected, atol=1e-6)


def test_layerwise_tying_by_hand():
    """A^1 = ... = A^K, C^1 = ... = C^K, u^{k+1} = H u^k + o^k; B and W separate (Sec. 2.2)."""
    model = _bow_model("layerwise")
    A, C = model.embedding.detach()
    H, W, Bq = model.H.weight.detach(), model.W.detach(), model.query_embedding.detach()
    u = Bq[QUERY[0]].sum(0)
    m, c = A[STORY[0]].sum(1), C[STORY[0]].sum(1)  # the empty slot: a zero vector
    for _ in range(3):
        u = H @ u + torch.softmax(m @ u, 0) @ c
    assert torch.allclose(model(STORY, torch.tensor([2]), QUERY).logits[0], u @ W.T, atol=1e-6)


def test_relu_variant_applies_relu_to_each_hop_output():
    model = _bow_model("adjacent", hops=1, relu=True)
    E = model.embedding.detach()
    u = E[0][QUERY[0]].sum(0)
    m, c = E[0][STORY[0]].sum(1), E[1][STORY[0]].sum(1)
    u = torch.relu(u + torch.softmax(m @ u, 0) @ c)
    assert torch.allclose(model(STORY, torch.tensor([2]), QUERY).logits[0], u @ E[1][[4, 5, 6]].T, atol=1e-6)


@pytest.mark.parametrize("formula", ["paper", "official"])
def test_position_and_temporal_encoding_in_the_model_by_hand(formula):
    torch.manual_seed(2)
    model = MemN2N(ModelConfig(vocab_size=7, answer_word_ids=[4, 5], dim=2, hops=1, memory_size=3,
                               pe_formula=formula, sentence_size=3))
    E, T = model.embedding.detach(), model.temporal.detach()
    story = torch.tensor([[[1, 2, 3], [4, 0, 0]]])  # slot 0: 3 words, slot 1: 1 word
    query = torch.tensor([[5, 6, 0]])
    if formula == "paper":  # J is each sentence's own length
        l3, l1, l2 = (l_table([1] * n, 2, "paper") for n in (3, 1, 2))
    else:  # J is the padded sentence size, 3
        l3, l1, l2 = (l_table([1, 1, 1], 2, "official", sentence_size=3)[:n] for n in (3, 1, 2))
    u = (l2 * E[0][[5, 6]]).sum(0)
    m = torch.stack([(l3 * E[0][[1, 2, 3]]).sum(0), (l1 * E[0][[4]]).sum(0)]) + T[0, :2]  # m_i + T_A(i)
    c = torch.stack([(l3 * E[1][[1, 2, 3]]).sum(0), (l1 * E[1][[4]]).sum(0)]) + T[1, :2]  # c_i + T_C(i)
    time = torch.tensor([[1, 0]])  # the slots' time indices swapped
    m_t = m - T[0, :2] + T[0, [1, 0]]
    c_t = c - T[1, :2] + T[1, [1, 0]]
    for t, (mm, cc) in ((None, (m, c)), (time, (m_t, c_t))):
        p = torch.softmax(torch.cat([mm @ u, torch.zeros(1)]), 0)[:2]  # the third, empty slot: score 0, c = 0
        u2 = u + p @ cc
        logits = model(story, torch.tensor([2]), query, time=t).logits[0]
        assert torch.allclose(logits, u2 @ E[1][[4, 5]].T, atol=1e-6)


@pytest.mark.parametrize("tying", ["adjacent", "layerwise"])
def test_nil_embedding_stays_zero_after_an_optimiser_step(tying):
    model = _bow_model(tying)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    out = model(STORY, torch.tensor([2]), QUERY, answer=torch.tensor([1]))
    out.loss.backward()
    optimizer.step()
    for weight in model.word_embeddings():
        assert torch.all(weight[..., 0, :] == 0)
        assert torch.any(weight[..., 1, :] != 0)


def test_loss_is_summed_over_the_batch():
    model = _bow_model("adjacent")
    story, query = STORY.repeat(3, 1, 1), QUERY.repeat(3, 1)
    out = model(story, torch.tensor([2, 1, 2]), query, answer=torch.tensor([0, 1, 2]))
    per_example = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2]), reduction="none")
    assert torch.allclose(out.loss, per_example.sum())


def test_random_noise_time_indices():
    g = torch.Generator().manual_seed(0)
    size = torch.tensor([10, 3, 1, 50])
    time = random_noise_time(size, 50, 0.1, g)
    for n, row in zip(size.tolist(), time):
        used = row[:n]
        assert torch.all(used[1:] > used[:-1])  # distinct, in the sentences' order, most recent smallest
        assert int(used[-1]) <= min(n - 1 + math.ceil(0.1 * n), 49)  # at most ceil(10% n) blanks inserted
    shifted = torch.stack([random_noise_time(size, 50, 0.1, g)[0, :10] for _ in range(200)])
    assert (shifted != torch.arange(10)).any(1).float().mean() > 0.2  # the noise does move indices
    assert torch.equal(random_noise_time(size, 50, 0.0, g)[0, :10], torch.arange(10))


def test_memory_network_layer_by_hand():
    torch.manual_seed(3)
    layer = MemoryNetwork(input_dim=3, memory_dim=4, num_hops=2, output_dim=5)
    query, memories = torch.randn(2, 3), torch.randn(2, 6, 3)
    E = layer.embedding.detach()
    u = query @ E[0]
    for k in range(2):
        m, c = memories @ E[k], memories @ E[k + 1]
        p = torch.softmax((m @ u.unsqueeze(-1)).squeeze(-1), -1)
        u = u + (p.unsqueeze(1) @ c).squeeze(1)
    assert torch.allclose(layer(query, memories), layer.output(u), atol=1e-6)
    assert layer.attention.shape == (2, 2, 6)


def test_zero_memories_by_hand():
    # Scores (1, 0) and one empty slot that is a zero vector: p = (e, 1) / (e + 1 + 1), o reads only c_1, c_2.
    u = torch.tensor([[1.0, 0.0]])
    m = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    c = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    _, p = memory_hop(u, m, c, zero_memories=torch.tensor([1]))
    e = math.e
    assert torch.allclose(p, torch.tensor([[e / (e + 2), 1 / (e + 2)]]))
    _, p0 = memory_hop(u, m, c, zero_memories=torch.tensor([0]))
    assert torch.allclose(p0, memory_hop(u, m, c)[1])  # no empty slot: the plain softmax


def test_zero_memories_equal_physical_zero_vectors_in_an_unmasked_softmax():
    """The model's formulation equals padding every story to memory_size with all-zero memories."""
    torch.manual_seed(4)
    model = MemN2N(ModelConfig(vocab_size=7, answer_word_ids=[4, 5], dim=3, hops=2, memory_size=5,
                               empty_memories="zero"))
    story, query, size = torch.tensor([[[1, 2, 0], [3, 0, 0]]]), torch.tensor([[5, 6, 0]]), torch.tensor([2])
    logits = model(story, size, query).logits
    E, T = model.embedding.detach(), model.temporal.detach()
    memory = model.embed_sentences(E, story) + T[:, None, :2]  # (E, 1, 2, d): the two sentences
    memory = torch.cat([memory, torch.zeros(3, 1, 3, 3)], dim=2)  # three empty slots: zero vectors
    u = model.embed_sentences(E[0], query)
    for k in range(2):
        p = torch.softmax((memory[k] @ u.unsqueeze(-1)).squeeze(-1), -1)  # no mask
        u = u + (p.unsqueeze(1) @ memory[k + 1]).squeeze(1)
    assert torch.allclose(logits, u @ E[2][[4, 5]].T, atol=1e-6)


@pytest.mark.parametrize("tying, temporal", [("adjacent", True), ("adjacent", False), ("layerwise", True), ("layerwise", False)])
def test_parameter_count_from_the_config_is_what_the_model_holds(tying, temporal):
    """The count a run's config.json is bounded by before its model is built (MAX_PARAMETERS) is
    the model's own: the formula stands next to the class, checked here against its tensors."""
    from memn2n_cli.configs import LMConfig
    from memn2n_cli.model import MemN2NLM

    qa = ModelConfig(vocab_size=31, answer_word_ids=[3, 5, 7], dim=6, hops=4, memory_size=9, tying=tying, temporal=temporal)
    assert MemN2N.parameter_count(qa) == sum(p.numel() for p in MemN2N(qa).parameters())
    lm = LMConfig(vocab_size=37, dim=6, hops=3, memory_size=11)
    assert MemN2NLM.parameter_count(lm) == sum(p.numel() for p in MemN2NLM(lm).parameters())


def test_a_model_past_max_parameters_is_refused_before_it_is_built():
    """Each size within its own bound, together terabytes: a ConfigError naming the sizes, at once."""
    from memn2n_cli.configs import MAX_PARAMETERS, LMConfig
    from memn2n_cli.errors import ConfigError
    from memn2n_cli.model import MemN2NLM

    with pytest.raises(ConfigError, match="vocab_size, dim, hops and memory_size make a model of 400,002,000,000 weights"):
        MemN2N(ModelConfig(vocab_size=10_000_000, answer_word_ids=[1], dim=10_000))
    with pytest.raises(ConfigError, match=f"at most {MAX_PARAMETERS:,}"):
        MemN2NLM(LMConfig(vocab_size=10_000_000, dim=10_000))
