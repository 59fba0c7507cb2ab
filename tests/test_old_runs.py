"""Runs written before the run-directory code was gathered into one module (memn2n 0.1.0 at
00f57e9, `memn2n_cli/checkpoint.py` for question answering, `lm_training.py` for the language
model) keep loading and answer as they did then. The expected answers were printed by that
version when it wrote the runs (tests/data/runs-before-24/)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

OLD = ROOT / "tests" / "data" / "runs-before-24"


def test_a_question_answering_run_from_before_loads_and_answers_as_it_did():
    import memn2n

    run = memn2n.load(OLD / "babi-task1")  # bAbI task 1, 10 epochs after 5 of linear start
    story = ("1 Mary went to the kitchen.\n2 John went to the garden.\n3 Where is Mary?\tkitchen\t1\n"
             "4 Daniel moved to the office.\n5 Where is John?\tgarden\t2\n")
    predictions = run.answer(story)
    assert [(p.answer, round(p.probability, 4)) for p in predictions] == [("kitchen", 0.9991), ("garden", 0.9994)]
    assert run.config["format"] == "memn2n-run/1" and run.config["tasks"] == [1]


def test_a_language_model_run_from_before_loads_and_continues_as_it_did():
    import memn2n

    run = memn2n.load(OLD / "ptb-small")  # 400 PTB sentences, 16 units, 2 hops, memory 8, 2 epochs
    produced = run.continue_text("the company said", 3)
    assert [w for w, _ in produced] == ["<eos>"] * 3
    assert [p for _, p in produced] == pytest.approx([0.05177970975637436, 0.041444119065999985, 0.03659877926111221],
                                                     rel=1e-5)
    assert run.model.config.hops == 2 and len(run.words) == run.model.config.vocab_size
