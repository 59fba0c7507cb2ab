"""End-To-End Memory Networks: the model of Sections 2 and 4.1.

Sukhbaatar, Szlam, Weston, Fergus. End-To-End Memory Networks. NIPS 2015. arXiv:1503.08895.

One hop (Sec. 2.1), for a controller state u and memories m_i (input) and c_i (output):

    p_i = Softmax(u^T m_i)                         (1)
    o   = sum_i p_i c_i                            (2)
    u'  = u + o        (adjacent tying, Sec. 2.2)  or  u' = H u + o  (layer-wise tying)

and after K hops the answer distribution is  a^ = Softmax(W (o^K + u^K))  (3).
`memory_hop` and `multi_hop` are that computation, shared by `MemN2N` (sentences of words,
Sec. 4) and `MemoryNetwork` (any continuous vectors).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memn2n_cli.lm import kernel as lm_kernel
from memn2n_cli.configs import MAX_PARAMETERS, LMConfig, ModelConfig
from memn2n_cli.errors import ConfigError


def memory_hop(u: Tensor, memory_in: Tensor, memory_out: Tensor, mask: Tensor | None = None, *,
               linear: bool | Tensor = False, transition: nn.Module | None = None,
               zero_memories: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One hop: attend (Eq. 1), read (Eq. 2), add (Sec. 2.2). Returns (u', p).

    u (..., d); memory_in, memory_out (..., M, d); mask (..., M), True where a memory is filled.
    ``linear``: linear start (Sec. 4.2), the softmax removed. ``transition``: H of layer-wise tying.
    ``zero_memories`` (...): empty memories that are zero vectors, as in the authors' code: each
    scores u^T 0 = 0, so it adds exp(0) = 1 to the softmax's denominator and nothing to o.
    """
    # Products and sums, not batched matrix-vector products: twice as fast on CPU for these sizes.
    scores = (memory_in * u.unsqueeze(-2)).sum(-1)  # u^T m_i            (..., M)
    linear_p = scores if mask is None else scores.masked_fill(~mask, 0.0)
    if linear is True:
        p = linear_p
    else:
        masked = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
        if zero_memories is None:
            p = torch.softmax(masked, dim=-1)  # (1)
        else:  # softmax over the filled memories and the zero ones: log Z = log(sum_i e^{s_i} + n_zero)
            log_z = torch.logaddexp(torch.logsumexp(masked, dim=-1), torch.log(zero_memories.to(scores.dtype)))
            p = torch.exp(masked - log_z.unsqueeze(-1))
        if isinstance(linear, Tensor):  # one flag per restart, when restarts are trained together
            p = torch.where(linear, linear_p, p)
    o = (p.unsqueeze(-1) * memory_out).sum(-2)  # sum_i p_i c_i           (..., d)  (2)
    return (u if transition is None else transition(u)) + o, p


def multi_hop(u: Tensor, memories: Sequence[tuple[Tensor, Tensor]], mask: Tensor | None = None, *,
              linear: bool | Tensor = False, transition: nn.Module | None = None, relu: bool = False,
              linear_dim: int = 0, zero_memories: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """K hops, one per (memory_in, memory_out) pair. Returns (u^{K+1} = o^K + u^K, p (..., K, M)).

    ``relu``: a ReLU on the internal state after each hop, on the units past the first
    ``linear_dim`` (bAbI 10k variant: all of them; language model, Sec. 5.1: half)."""
    attention = []
    for memory_in, memory_out in memories:
        u, p = memory_hop(u, memory_in, memory_out, mask, linear=linear, transition=transition,
                          zero_memories=zero_memories)
        if relu:
            u = torch.cat([u[..., :linear_dim], torch.relu(u[..., linear_dim:])], dim=-1)
        attention.append(p)
    return u, torch.stack(attention, dim=-2)


def position_encoding(words: Tensor, dim: int, formula: str = "official", sentence_size: int = 0
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """Position encoding (Sec. 4.1), l_kj for word j and embedding dimension k, in the separable
    form l_kj = a_j + g_k b_j that both formulas share (j = 1..J, k = 1..d):

    paper     l_kj = (1 - j/J) - (k/d)(1 - 2j/J),  J the words in each sentence:
              a_j = 1 - j/J,   b_j = 2j/J - 1,           g_k = k/d
    official  l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J),  J = ``sentence_size`` (the authors' code):
              a_j = 1,         b_j = (j - (J+1)/2) / J,  g_k = 4 (k - (d+1)/2) / d

    words (..., width) word ids, 0 = nil -> a, b (..., width) and g (dim,).
    Positions past a sentence's end hold the nil word, whose embedding is zero.
    """
    j = torch.arange(1, words.shape[-1] + 1, dtype=torch.float32, device=words.device)  # (width,)
    k = torch.arange(1, dim + 1, dtype=torch.float32, device=words.device)  # (dim,)
    if formula == "paper":
        J = (words != 0).sum(-1, keepdim=True).clamp(min=1)  # (..., 1)
        return 1 - j / J, 2 * j / J - 1, k / dim
    J = float(sentence_size)
    b = ((j - (J + 1) / 2) / J).expand(words.shape)
    return torch.ones_like(b), b, 4 * (k - (dim + 1) / 2) / dim


class Output(NamedTuple):
    logits: Tensor  # (B, answers)
    loss: Tensor | None  # summed cross-entropy over the batch (Sec. 4.2: not averaged)
    attention: Tensor  # (B, K, M) p of every hop, detached, for `visualize`


def check_size(model_class, config) -> int:
    """The weights ``model_class(config)`` holds (its ``parameter_count``); a ConfigError past
    MAX_PARAMETERS, before any is allocated: each size has its own bound, but together (10,000,000
    words of 10,000 dimensions) they could still ask for terabytes."""
    count = model_class.parameter_count(config)
    if count > MAX_PARAMETERS:
        raise ConfigError(f"{model_class.SIZES} make a model of {count:,} weights ({count * 4 / 2**30:,.1f} GiB); "
                          f"at most {MAX_PARAMETERS:,}")
    return count


def _zero_nil_row(grad: Tensor) -> Tensor:
    """Keep the nil word's embedding at zero (Sec. 4.1): its gradient is dropped."""
    grad = grad.clone()
    grad[..., 0, :] = 0
    return grad


def _rows(weight: Tensor, index: Tensor) -> Tensor:
    """weight[:, index] for weight (E, U, d) and index (B, M) -> (E, B, M, d), as an embedding lookup
    (its backward sums rows rather than scattering; under vmap, one lookup for all restarts)."""
    E, U, d = weight.shape
    return F.embedding(index, weight.transpose(0, 1).reshape(U, E * d)).unflatten(-1, (E, d)).movedim(-2, 0)


class MemN2N(nn.Module):
    """The bAbI model: sentences of word ids in, answer-vocabulary logits out.

    Adjacent tying (Sec. 2.2): A^{k+1} = C^k, B = A^1, W^T = C^K (and T_A^{k+1} = T_C^k), so the
    K+1 distinct embeddings are one tensor ``embedding[0..K]``: A^1 = B is ``embedding[0]``, C^k is
    ``embedding[k]``. Layer-wise tying: A^1 = ... = A^K, C^1 = ... = C^K, u^{k+1} = H u^k + o^k,
    with B and W of their own.
    """

    SIZES = "{vocab_size}, {dim}, {hops} and {memory_size}"  # the fields its size grows with

    @staticmethod
    def embeddings(c: ModelConfig) -> int:
        """E, the distinct embedding matrices: adjacent tying A^1, C^1..C^K; layer-wise A, C."""
        return c.hops + 1 if c.tying == "adjacent" else 2

    @staticmethod
    def parameter_count(c: ModelConfig) -> int:
        """The weights ``MemN2N(c)`` holds, counted from its config: E embeddings (V, d) and, with
        temporal encoding, E temporal ones (M, d); layer-wise tying adds B (V, d), H (d, d) and W
        (answers, d). What a run's config.json asks for, checked before it is built."""
        E = MemN2N.embeddings(c)
        count = E * c.vocab_size * c.dim + (E * c.memory_size * c.dim if c.temporal else 0)
        if c.tying == "layerwise":
            count += c.vocab_size * c.dim + c.dim * c.dim + len(c.answer_word_ids) * c.dim
        return count

    def __init__(self, config: ModelConfig):
        super().__init__()
        check_size(MemN2N, config)
        self.config = c = config
        self.linear_start = False  # True during the linear-start phase (Sec. 4.2)
        n_embeddings = self.embeddings(c)
        self.embedding = nn.Parameter(torch.randn(n_embeddings, c.vocab_size, c.dim) * c.init_std)  # (E, V, d)
        self.temporal = nn.Parameter(torch.randn(n_embeddings, c.memory_size, c.dim) * c.init_std) if c.temporal else None
        if c.tying == "layerwise":
            self.query_embedding = nn.Parameter(torch.randn(c.vocab_size, c.dim) * c.init_std)  # B  (V, d)
            self.H = nn.Linear(c.dim, c.dim, bias=False)
            self.W = nn.Parameter(torch.randn(len(c.answer_word_ids), c.dim) * c.init_std)  # (answers, d)
            nn.init.normal_(self.H.weight, std=c.init_std)
        self.register_buffer("answer_word_ids", torch.tensor(c.answer_word_ids), persistent=False)
        with torch.no_grad():
            for weight in self.word_embeddings():
                weight[..., 0, :] = 0
                weight.register_hook(_zero_nil_row)

    def word_embeddings(self) -> list[nn.Parameter]:
        return [self.embedding] + ([self.query_embedding] if self.config.tying == "layerwise" else [])

    def embed_sentences(self, weight: Tensor, words: Tensor) -> Tensor:
        """m = sum_j l_j * A x_j (Sec. 4.1), x_j the one-hot vector of word j; l_kj = 1 for bag of words.

        With l_kj = a_j + g_k b_j (see position_encoding) the sum is two weighted bags of words times
        the embedding matrix: m = (sum_j a_j x_j) A + g * (sum_j b_j x_j) A. Bags are vectors over the
        vocabulary, so this is a matrix product, much cheaper than gathering a vector per word.
        weight ([E,] V, d), words (..., J) -> ([E,] ..., d).
        """
        flat = words.reshape(-1, words.shape[-1])  # (N, J)

        def bag(coefficient: Tensor) -> Tensor:  # sum_j c_j x_j times A  ([E,] ..., d)
            counts = torch.zeros(len(flat), weight.shape[-2], device=words.device).scatter_add(
                1, flat, coefficient.expand(words.shape).reshape(flat.shape))  # (N, V); out of place for vmap
            return (counts @ weight).unflatten(-2, words.shape[:-1])

        if self.config.encoding == "bow":
            return bag(torch.ones((), device=words.device))
        a, b, g = position_encoding(words, self.config.dim, self.config.pe_formula, self.config.sentence_size)
        return bag(a) + g * bag(b)

    def forward(self, story: Tensor, story_size: Tensor, query: Tensor, time: Tensor | None = None,
                answer: Tensor | None = None, linear_start: bool | Tensor | None = None,
                sentences: Tensor | None = None) -> Output:
        """story (B, M, J) word ids, slot 0 the most recent sentence, or (B, M) rows of ``sentences``
        (U, J), the batch's distinct sentences, so that each is embedded once (`make_batch` does this);
        story_size (B,) filled slots; query (B, J); time (B, M) temporal index of each slot (default:
        the slot itself); answer (B,) answer ids, -1 for an answer never seen in training (counted
        as wrong); linear_start: the phase, when not the model's own (a tensor flag for vmapped restarts)."""
        c = self.config
        linear = self.linear_start if linear_start is None else linear_start
        if sentences is None:  # words in every slot: each slot a sentence of its own
            sentences = story.flatten(0, 1)
            story = torch.arange(len(sentences), device=story.device).view(story.shape[:2])
        # The memory holds memory_size slots; those past the story are empty (Sec. 4.1: nil padding).
        zero = (c.memory_size - story_size).clamp(min=0) if c.empty_memories == "zero" else None
        B, M = story.shape
        slots = torch.arange(M, device=story.device)
        mask = slots < story_size.unsqueeze(-1)  # (B, M) padded slots get no attention
        table = self.embed_sentences(self.embedding, sentences)  # (E, U, d)
        memory = _rows(table, story)  # (E, B, M, d)
        if self.temporal is not None:  # m_i = sum_j A x_ij + T_A(i)  (Sec. 4.1)
            time = slots.expand(B, M) if time is None else time
            time = time.clamp(max=c.memory_size - 1)
            memory = memory + _rows(self.temporal, time)  # (E, B, M, d)
        if c.tying == "adjacent":
            u = self.embed_sentences(self.embedding[0], query)  # B = A^1  (B, d)
            memories = [(memory[k], memory[k + 1]) for k in range(c.hops)]  # (A^k, C^k), A^{k+1} = C^k
            u, attention = multi_hop(u, memories, mask, linear=linear, relu=c.relu, zero_memories=zero)
            W = self.embedding[c.hops][self.answer_word_ids]  # W^T = C^K  (answers, d)
        else:
            u = self.embed_sentences(self.query_embedding, query)
            memories = [(memory[0], memory[1])] * c.hops
            u, attention = multi_hop(u, memories, mask, linear=linear, transition=self.H, relu=c.relu,
                                     zero_memories=zero)
            W = self.W
        logits = u @ W.T  # W (o^K + u^K), Eq. (3); the softmax is in the loss  (B, answers)
        loss = None if answer is None else F.cross_entropy(logits, answer, reduction="sum", ignore_index=-1)
        return Output(logits, loss, attention.detach())


class MemoryNetwork(nn.Module):
    """A memory layer over continuous vectors, with the hops of MemN2N (adjacent tying).

    query (B, input_dim) and memories (B, N, input_dim) -> (B, output_dim), or (B, memory_dim)
    when ``output_dim`` is None. The embeddings A^k, C^k are linear maps; ``num_memories`` adds
    temporal encoding for memories given in order, most recent first.
    """

    def __init__(self, input_dim: int, memory_dim: int = 128, num_hops: int = 3, output_dim: int | None = None,
                 num_memories: int | None = None, init_std: float = 0.1):
        super().__init__()
        self.num_hops = num_hops
        self.embedding = nn.Parameter(torch.randn(num_hops + 1, input_dim, memory_dim) * init_std)  # B = A^1, C^1..C^K
        self.temporal = nn.Parameter(torch.randn(num_hops + 1, num_memories, memory_dim) * init_std) if num_memories else None
        self.output = nn.Linear(memory_dim, output_dim, bias=False) if output_dim else None
        self.attention: Tensor | None = None  # (B, K, N), kept from the last forward

    def forward(self, query: Tensor, memories: Tensor, mask: Tensor | None = None) -> Tensor:
        memory = memories.unsqueeze(0) @ self.embedding.unsqueeze(1)  # (K+1, B, N, memory_dim)
        if self.temporal is not None:
            memory = memory + self.temporal[:, None, : memories.shape[1]]
        u = query @ self.embedding[0]  # (B, memory_dim)
        u, attention = multi_hop(u, [(memory[k], memory[k + 1]) for k in range(self.num_hops)], mask)
        self.attention = attention.detach()
        return u if self.output is None else self.output(u)


class MemN2NLM(nn.Module):
    """Section 5: each memory slot holds one of the N previous words (slot 0 the current one) with
    its temporal embedding, m_i = A x_i + T_A(i), c_i = C x_i + T_C(i); the query is the constant
    vector 0.1; layer-wise tying (one A, one C for all hops, u^{k+1} = H u^k + o^k) with a ReLU on
    the units past ``linear_dim``; the output matrix W is its own (untied)."""

    SIZES = "{vocab_size}, {dim} and {memory_size}"  # the fields its size grows with

    @staticmethod
    def parameter_count(c: LMConfig) -> int:
        """The weights ``MemN2NLM(c)`` holds, counted from its config: A, C and W (V, d), T_A and
        T_C (N, d), H (d, d)."""
        return 3 * c.vocab_size * c.dim + 2 * c.memory_size * c.dim + c.dim * c.dim

    def __init__(self, config: LMConfig):
        super().__init__()
        check_size(MemN2NLM, config)
        self.config = c = config
        self.A, self.C = nn.Embedding(c.vocab_size, c.dim), nn.Embedding(c.vocab_size, c.dim)
        self.T_A, self.T_C = nn.Parameter(torch.empty(c.memory_size, c.dim)), nn.Parameter(torch.empty(c.memory_size, c.dim))
        self.H = nn.Linear(c.dim, c.dim, bias=False)
        self.W = nn.Linear(c.dim, c.vocab_size, bias=False)
        for weight in self.parameters():
            nn.init.normal_(weight, std=c.init_std)

    def forward(self, context: Tensor, target: Tensor | None = None) -> Output:
        """context (B, N) word ids, the current word first; target (B,) the next word -> logits (B, V).

        On the CPU the hops run in a compiled kernel (memn2n_cli/lm/kernel.c), which keeps each
        example's memories in cache for all K hops; elsewhere, and where it cannot be built, in
        `multi_hop`. Both compute the same (tests/test_lm_kernel.py)."""
        c = self.config
        N = context.shape[1]
        u = torch.full((len(context), c.dim), c.query, device=context.device)  # (B, d)
        if lm_kernel.usable(context, *self.parameters()):
            u, attention = lm_kernel.LayerwiseHops.apply(context, u, self.A.weight, self.C.weight, self.T_A[:N],
                                                         self.T_C[:N], self.H.weight, c.hops, c.linear_dim)
        else:
            m = self.A(context) + self.T_A[:N]  # (B, N, d)
            memory_out = self.C(context) + self.T_C[:N]  # (B, N, d)
            u, attention = multi_hop(u, [(m, memory_out)] * c.hops, transition=self.H, relu=True,
                                     linear_dim=c.linear_dim)
        logits = self.W(u)  # (B, V)
        loss = None if target is None else F.cross_entropy(logits, target, reduction="sum")
        return Output(logits, loss, attention.detach())
