"""Every option of the two recipes, its default and its checks, in one place: the question-
answering model and recipe (Sections 2, 4), the language model and recipe (Section 5).

The CLI, sweep grids and the library all build these, so that they get the same defaults and the
same messages: a value or combination that cannot be trained raises `ConfigError` naming the
fields, which the CLI shows as flags. `qa_settings` and `lm_settings` turn the options a user
chose (by field name) into configs. No torch here: `memn2n --help` shows these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from memn2n_cli.errors import ArgumentError, ConfigError, at_least, at_most, more_than, of_types, one_of

# Sizes past any model of the paper's, and far past what this tool trains: a bound, so that a typo
# or a damaged config.json is an error and not an allocation of terabytes.
MAX_DIM, MAX_HOPS, MAX_MEMORY, MAX_VOCABULARY = 10_000, 100, 100_000, 10_000_000
# The sizes together: a model of at most 2**31 weights (8 GiB of float32), some 30 times the
# paper's largest (text8's, Table 2). Each size within its own bound can still ask for terabytes
# (10,000,000 words of 10,000 dimensions); model.py counts a config's weights before building it.
MAX_PARAMETERS = 2**31
MAX_SEED = 2**64 - 1  # torch.manual_seed takes no larger seed

# Question answering ----------------------------------------------------------------------------


@dataclass
class ModelOptions:
    """The question-answering model's options (Sections 2, 4.1, 4.2), as a user chooses them, with
    the paper's defaults; `ModelConfig` adds the sizes the data gives."""

    dim: int = 20  # d: 20 for one task, 50 for joint training (Sec. 4.2)
    hops: int = 3  # K = 3 (Sec. 4.2)
    memory_size: int = 50  # the 50 most recent sentences (Sec. 4.2)
    encoding: str = "pe"  # "bow" or "pe": position encoding (Sec. 4.1)
    pe_formula: str = "official"  # the authors' code's (which made Table 1), or "paper" (Sec. 4.1): see README
    temporal: bool = True  # temporal encoding T_A, T_C (Sec. 4.1)
    tying: str = "adjacent"  # "adjacent" or "layerwise" (Sec. 2.2)
    relu: bool = False  # ReLU on u after each hop (the 10k variant)
    init_std: float = 0.1  # weights drawn from N(0, 0.1) (Sec. 4.2)
    empty_memories: str = "zero"  # "zero": zero vectors in the softmax, as in the authors' code (measured best); "masked": none

    def __post_init__(self):
        of_types(self)
        for field, allowed in (("encoding", ("pe", "bow")), ("pe_formula", ("official", "paper")),
                               ("tying", ("adjacent", "layerwise")), ("empty_memories", ("zero", "masked"))):
            one_of(self, field, allowed)
        at_least(self, 1, "dim", "hops", "memory_size")
        at_least(self, 0, "init_std")
        at_most(self, MAX_DIM, "dim")
        at_most(self, MAX_HOPS, "hops")
        at_most(self, MAX_MEMORY, "memory_size")


@dataclass(kw_only=True)
class ModelConfig(ModelOptions):
    """A model's whole configuration: the options, and the sizes its data gives."""

    vocab_size: int  # words, id 0 the nil word
    answer_word_ids: list[int]  # the word id of each answer: W^T = C^K reads these rows (adjacent tying)
    sentence_size: int = 11  # J of the official formula: the longest sentence in training

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "vocab_size", "sentence_size")  # J = 0 divides by zero in the position encoding
        at_most(self, MAX_VOCABULARY, "vocab_size", "sentence_size")
        ids = self.answer_word_ids
        if not (isinstance(ids, list) and ids and all(
                isinstance(i, int) and not isinstance(i, bool) and 0 < i < self.vocab_size for i in ids)):
            raise ConfigError(f"{{answer_word_ids}} must be word ids from 1 to {self.vocab_size - 1}")


@dataclass
class TrainConfig:
    epochs: int = 100  # Sec. 4.2 (60 for joint training)
    lr: float = 0.01  # eta (Sec. 4.2)
    anneal_every: int = 25  # eta halved every 25 epochs (15 for joint training)
    batch_size: int = 32
    max_grad_norm: float = 40.0
    validation_fraction: float = 0.1
    linear_start: bool = True
    ls_lr: float = 0.005  # eta with linear start (Sec. 4.2), for the whole run
    ls_epochs: int = 20  # length of the linear phase, as in the authors' code
    ls_patience: int = 0  # if > 0, end it sooner after this many epochs without a better validation loss
    random_noise: float = 0.1  # share of empty memories inserted (Sec. 4.1); 0 turns it off
    seed: int = 0  # initialisation, batch order and noise
    split_seed: int = 0  # which stories are held out for validation: restarts of a sweep share it

    def __post_init__(self):
        of_types(self)
        at_least(self, 1, "epochs", "anneal_every", "batch_size", "ls_epochs")
        at_least(self, 0, "lr", "validation_fraction", "ls_lr", "ls_patience", "random_noise", "seed", "split_seed")
        more_than(self, 0, "max_grad_norm")  # clipping to 0 scales every gradient to nothing: it would train nothing
        at_most(self, MAX_SEED, "seed", "split_seed")
        at_most(self, 0.9, "validation_fraction")
        at_most(self, 1, "random_noise")
        if self.linear_start and self.ls_patience and self.validation_fraction == 0:
            raise ConfigError("{ls_patience} watches the validation loss: it needs {validation_fraction} > 0")


JOINT = {"dim": 50, "epochs": 60, "anneal_every": 15}  # joint training's d and schedule (Sec. 4.2)


def qa_settings(chosen: dict, joint: bool = False) -> tuple[ModelOptions, TrainConfig]:
    """The model options and recipe of a run from the options a user chose (by field name); the
    others are the paper's defaults, with joint training's where ``joint``. A value or combination
    that cannot be trained is a ConfigError naming the options, for `train`, sweep grids and the
    library alike; an option neither config has, a ConfigError too."""
    chosen = {**(JOINT if joint else {}), **chosen}
    unknown = sorted(chosen.keys() - fields_of(ModelOptions) - fields_of(TrainConfig))
    if unknown:
        raise ConfigError(f"{{{unknown[0]}}} is not an option of a question-answering model")
    options = ModelOptions(**{k: v for k, v in chosen.items() if k in fields_of(ModelOptions)})
    config = TrainConfig(**{k: v for k, v in chosen.items() if k in fields_of(TrainConfig)})
    if config.random_noise > 0 and not options.temporal:
        raise ConfigError("{random_noise} perturbs temporal encoding: set it to 0 when {temporal} is off")
    return options, config


def fields_of(config: type) -> set[str]:
    return set(config.__dataclass_fields__)


# Language modelling ----------------------------------------------------------------------------


@dataclass
class LMConfig:
    """The language model of Section 5; defaults are the authors' code's (Table 2: PTB 150 units)."""

    vocab_size: int
    dim: int = 150  # d: 150 for Penn Treebank, 500 for Text8 (Table 2)
    hops: int = 6  # K
    memory_size: int = 100  # N previous words in memory, the current word included
    linear_dim: int | None = None  # units left linear, a ReLU on the others; None: half of them (Sec. 5.1)
    init_std: float = 0.05  # weights drawn from N(0, 0.05) (Sec. 5.1)
    query: float = 0.1  # the constant query u^1 (Sec. 5: no question, u = 0.1)

    def __post_init__(self):
        of_types(self)
        if self.linear_dim is None:
            self.linear_dim = self.dim // 2
        at_least(self, 1, "vocab_size", "dim", "hops", "memory_size")
        at_least(self, 0, "linear_dim", "init_std")
        at_most(self, MAX_DIM, "dim")
        at_most(self, MAX_HOPS, "hops")
        at_most(self, MAX_MEMORY, "memory_size")
        at_most(self, MAX_VOCABULARY, "vocab_size")
        if self.linear_dim > self.dim:
            raise ConfigError(f"{{linear_dim}} {self.linear_dim} is more than {{dim}} {self.dim}")


@dataclass
class LMTrainConfig:
    lr: float = 0.01  # Sec. 5.1
    lr_divisor: float = 1.5  # after an epoch whose validation cost did not decrease
    min_lr: float = 1e-5  # training stops below this
    max_grad_norm: float = 50.0  # Sec. 5.1
    batch_size: int = 128  # Sec. 5.1
    max_epochs: int = 100
    max_steps: int = 0  # stop (and checkpoint) after this many steps in all; 0 = no bound
    seed: int = 0
    checkpoint_every: int = 1_000  # steps between checkpoints within an epoch (and a progress line); not the recipe's

    def __post_init__(self):
        of_types(self)
        at_least(self, 0, "lr", "min_lr", "max_steps", "seed")
        at_least(self, 1, "batch_size", "max_epochs", "checkpoint_every")
        more_than(self, 0, "max_grad_norm")  # clipping to 0 scales every gradient to nothing: it would train nothing
        more_than(self, 1, "lr_divisor")
        at_most(self, MAX_SEED, "seed")


def lm_settings(chosen: dict) -> tuple[dict, LMTrainConfig]:
    """The model options (LMConfig's fields less the vocabulary) and the recipe of a run from the
    options a user chose (by field name), the others LMConfig's and LMTrainConfig's defaults. A
    value that cannot be trained, or an option neither config has, is a ConfigError."""
    model_fields = fields_of(LMConfig) - {"vocab_size"}
    unknown = sorted(chosen.keys() - model_fields - fields_of(LMTrainConfig))
    if unknown:
        raise ConfigError(f"{{{unknown[0]}}} is not an option of a language model")
    model = {k: v for k, v in chosen.items() if k in model_fields}
    LMConfig(vocab_size=1, **model)  # the model's values are checked before any data is read
    return model, LMTrainConfig(**{k: v for k, v in chosen.items() if k in fields_of(LMTrainConfig)})


SPLITS = ("train", "valid", "test")  # the data splits of every task
RESTARTS = 10  # a sweep's restarts: Sec. 4.2, each training repeated 10 times, the best kept (Table 2 likewise)
EVAL_BATCH = 512  # examples per forward pass when evaluating or answering: bounds memory on 10k and joint data
TOP_K = 3  # the answers listed per question, best first (`predict --top-k`, `run.answer(top_k=)`, the API's top_k)
DEVICES = "auto, cpu, cuda, cuda:N or mps"  # the names `--device` and device= take (devices.py reads them)
NEXT_WORDS = 10  # the words a language model adds to a prompt (`predict --next`, `LMRun.continue_text`)


def check_split(split: str) -> None:
    """An ArgumentError unless ``split`` names a split (`eval --split`, `run.evaluate(split)`)."""
    if split not in SPLITS:
        raise ArgumentError("split", "{} is one of " + ", ".join(SPLITS) + f", not {split!r}")


def check_next_words(count, argument: str = "next_words") -> None:
    """An ArgumentError unless ``count``, the words to add to a prompt, is a whole number of at least
    1 (`predict --next`, `memn2n.answer(next_words=)`, `LMRun.continue_text(prompt, count)`: its
    ``argument``)."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ArgumentError(argument, f"{{}} must be a whole number of at least 1, not {count!r}")
