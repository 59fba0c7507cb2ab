"""The training recipe of Section 4.2 on real task-1 data."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from memn2n_cli.configs import ModelConfig, TrainConfig
from memn2n_cli.model import MemN2N
from memn2n_cli.qa.runs import load_splits
from memn2n_cli.qa.batches import distinct_rows, make_batch
from memn2n_cli.qa.training import fit, learning_rate
from tasks import available_tasks, get_task, register_task
from tasks.qa import Vocabulary, encode


def test_learning_rate_schedule():
    paper = TrainConfig(linear_start=False)
    assert [learning_rate(paper, e) for e in (0, 24, 25, 49, 50, 75, 99)] == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.00125, 0.00125]
    joint = TrainConfig(linear_start=False, epochs=60, anneal_every=15)
    assert [learning_rate(joint, e) for e in (14, 15, 30, 59)] == [0.01, 0.005, 0.0025, 0.00125]
    assert learning_rate(TrainConfig(), 0) == 0.005 and learning_rate(TrainConfig(), 25) == 0.0025  # with LS


@pytest.fixture(scope="module")
def task1(en_dir):
    splits = load_splits(get_task("babi"), en_dir, [1], 0.1, split_seed=0)
    vocab = Vocabulary.build(splits["all_train"])
    return vocab, {name: encode(splits[name], vocab, 10) for name in ("train", "valid")}


def _train(task1, **overrides):
    vocab, data = task1
    torch.manual_seed(0)
    model = MemN2N(ModelConfig(vocab_size=len(vocab.words), answer_word_ids=vocab.answer_word_ids(), memory_size=10))
    history = fit(model, data["train"], data["valid"], TrainConfig(**overrides))
    return model, history


def test_linear_start_with_patience_ends_when_the_validation_loss_stops_falling(task1):
    model, history = _train(task1, epochs=2, ls_epochs=20, ls_patience=1)
    phases = [r["phase"] for r in history]
    n_linear = phases.count("linear")
    assert phases == ["linear"] * n_linear + ["softmax"] * 2 and n_linear >= 2
    losses = [r["valid_loss"] for r in history[:n_linear]]
    assert all(b < a for a, b in zip(losses[:-2], losses[1:-1]))  # falling while linear...
    assert n_linear == 20 or losses[-1] >= min(losses[:-1])  # ...until it stopped falling (or the cap)
    assert all(r["lr"] == 0.005 for r in history) and not model.linear_start


def test_linear_start_runs_a_fixed_number_of_epochs_by_default(task1):
    _, history = _train(task1, epochs=1, ls_epochs=3)
    assert [r["phase"] for r in history] == ["linear"] * 3 + ["softmax"]


def test_training_is_repeatable_with_a_seed(task1):
    _, first = _train(task1, epochs=2, ls_epochs=2)
    _, second = _train(task1, epochs=2, ls_epochs=2)
    assert first == second


def test_a_batch_embeds_each_distinct_sentence_once_and_gives_the_same_logits(task1):
    vocab, data = task1
    train = data["train"]
    index = torch.arange(40, 72)  # stories that share sentences: several questions of each
    batch = make_batch(train, index)
    rows = train.memory[index, : batch["story"].shape[1]]
    assert len(batch["sentences"]) == len(rows.unique()) < rows.numel() / 2
    assert torch.equal(batch["sentences"][batch["story"]], train.sentences[rows][..., : batch["sentences"].shape[1]])
    torch.manual_seed(0)
    model = MemN2N(ModelConfig(vocab_size=len(vocab.words), answer_word_ids=vocab.answer_word_ids(), memory_size=10))
    words_in_every_slot = {**batch, "story": batch["sentences"][batch["story"]], "sentences": None}
    torch.testing.assert_close(model(**batch).logits, model(**words_in_every_slot).logits)
    # Restarts: each its own batch, its own distinct rows, padded with the empty sentence (row 0).
    both = torch.stack([index, torch.arange(500, 532)])
    table, story = distinct_rows(train.memory[both, :5], len(train.sentences))
    assert torch.equal(torch.stack([t[s] for t, s in zip(table, story)]), train.memory[both, :5])
    assert table.shape[1] == max(len(train.memory[i, :5].unique()) for i in both)


def test_training_reduces_the_error(task1):
    _, history = _train(task1, epochs=15, linear_start=False)
    assert history[-1]["train_error"] < history[0]["train_error"] - 20


def test_registry_refuses_duplicates_unknown_kinds_and_incomplete_tasks():
    from tasks import KINDS, missing_members
    from tasks.qa import QATask

    assert "babi" in available_tasks()
    for name in ("babi", "jsonl", "ptb", "text8"):
        task = get_task(name)
        assert missing_members(task, KINDS[task.kind]) == []
    with pytest.raises(ValueError, match="already registered"):
        register_task("babi")(type(get_task("babi")))
    with pytest.raises(TypeError, match="has kind None; the commands know 'qa' and 'lm'"):
        register_task("not-a-task")(type("NotATask", (), {}))
    with pytest.raises(TypeError, match="has kind 'vision'"):
        register_task("not-a-task")(type("Vision", (QATask,), {"kind": "vision"}))
    half = type("Half", (), {"kind": "qa", "summary": "", "tokenize": lambda self, text: text.split(),
                             "metrics": lambda self, counts: counts})
    with pytest.raises(TypeError, match=r"lacks count, data_files, .* of the 'qa' interface \(tasks.QuestionAnswering\)"):
        register_task("not-a-task")(half)
    assert "not-a-task" not in available_tasks()


def test_configs_check_their_own_values_and_name_the_fields():
    """The same checks for the library, the CLI (which shows the fields as flags) and sweep grids."""
    from memn2n_cli.configs import lm_settings
    from memn2n_cli.configs import qa_settings
    from memn2n_cli.errors import ConfigError, at_least, at_most

    for build, message in [
        (lambda: qa_settings({"encoding": "cnn"}), "encoding is pe or bow, not 'cnn'"),
        (lambda: qa_settings({"temporal": False}), "random_noise perturbs temporal encoding: set it to 0 when temporal is off"),
        (lambda: qa_settings({"colour": "red"}), "colour is not an option of a question-answering model"),
        (lambda: qa_settings({"linear_dim": 3}), "linear_dim is not an option of a question-answering model"),
        (lambda: TrainConfig(ls_patience=1, validation_fraction=0), "ls_patience watches the validation loss"),
        (lambda: TrainConfig(batch_size=0), "batch_size must be at least 1, not 0"),
        (lambda: lm_settings({"encoding": "pe"}), "encoding is not an option of a language model"),
        (lambda: lm_settings({"dim": 8, "linear_dim": 9}), "linear_dim 9 is more than dim 8"),
        # Clipping to norm 0 scales every gradient to nothing: a run that trains nothing, silently.
        (lambda: qa_settings({"max_grad_norm": 0}), "max_grad_norm must be more than 0, not 0"),
        (lambda: lm_settings({"max_grad_norm": 0.0}), "max_grad_norm must be more than 0, not 0.0"),
        # Seeds torch.manual_seed takes; values of the field's type (True is no size, 20.0 no dimension).
        (lambda: qa_settings({"seed": 2**70}), "seed must be at most 18,446,744,073,709,551,615, not 1180591620717411303424"),
        (lambda: lm_settings({"seed": -1}), "seed must be at least 0, not -1"),
        (lambda: qa_settings({"memory_size": True}), "memory_size must be a whole number, not True"),
        (lambda: lm_settings({"dim": 20.0}), "dim must be a whole number, not 20.0"),
        (lambda: qa_settings({"lr": "0.1"}), "lr must be a finite number, not '0.1'"),
        # NaN is no number to train with: it passed every "at least" check and trained a run of NaN weights.
        (lambda: qa_settings({"lr": math.nan, "linear_start": False}), "lr must be a finite number, not nan"),
        (lambda: lm_settings({"query": math.inf}), "query must be a finite number, not inf"),
        (lambda: qa_settings({"random_noise": 1.5}), "random_noise must be at most 1, not 1.5"),
        (lambda: qa_settings({"validation_fraction": 0.95}), "validation_fraction must be at most 0.9, not 0.95"),
        (lambda: at_least(SimpleNamespace(x=math.nan), 0, "x"), "x must be at least 0, not nan"),
        (lambda: at_most(SimpleNamespace(x=math.nan), 1, "x"), "x must be at most 1, not nan"),
        # J = 0 (a damaged config.json) divided by zero in the position encoding: every score NaN, exit 0.
        (lambda: ModelConfig(vocab_size=5, answer_word_ids=[1], sentence_size=0), "sentence_size must be at least 1, not 0"),
        (lambda: ModelConfig(vocab_size=5, answer_word_ids=[]), "answer_word_ids must be word ids from 1 to 4"),
        (lambda: qa_settings({"temporal": 1}), "temporal must be true or false, not 1"),
        (lambda: lm_settings({"linear_dim": 2.5}), "linear_dim must be a whole number, not 2.5"),
    ]:
        with pytest.raises(ConfigError) as error:
            build()
        assert str(error.value).startswith(message), (str(error.value), message)
    options, config = qa_settings({"init_std": 0.0, "random_noise": 0.0}, joint=True)
    assert (options.init_std, config.random_noise, options.dim, config.epochs) == (0.0, 0.0, 50, 60)  # zeros kept


def test_no_module_outside_tasks_names_a_task_or_compares_a_kind():
    """The registry dispatches: no string literal in memn2n_cli/ is a task's name, no module there
    imports a particular task's, and a task's kind is compared only in tasks.get_task
    (memn2n_cli.recipes looks its recipe up by kind)."""
    import ast
    from pathlib import Path

    names = set(available_tasks())
    for path in sorted((Path(__file__).parents[1] / "memn2n_cli").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert node.value not in names, f"{path.name}:{node.lineno} names the task {node.value!r}"
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                assert not any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides), f"{path.name}:{node.lineno}"
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[:2] not in (["tasks", "babi"], ["tasks", "jsonl"]), \
                    f"{path.name}:{node.lineno} imports {node.module}"  # tasks.qa and tasks.lm: a kind's shared code


def test_error_is_exact_in_json():
    """998 right of 1,000 is 0.2% (it was written 0.20000000000000018)."""
    from tasks.qa import metrics

    assert metrics({"correct": 998, "total": 1000, "loss": 1.0})["error"] == 0.2
