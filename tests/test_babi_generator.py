"""The built-in bAbI generator: every task it knows, checked against the properties all tasks share.

Family-specific checks (an independent solver replaying each story) are in test_generator_*.py.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from tasks import babi, qa
from tasks.babi_generator import GENERATORS, file_rng, write_task_files
from tasks.babi_generator.world import generate_file
from tests.conftest import assert_one_line_error

TASKS = sorted(GENERATORS)
LINE = re.compile(r"^\d+ \S")


def generated(task: int, questions: int = 300, seed: int = 3) -> list[qa.Question]:
    text = generate_file(task, questions, file_rng(seed, task, "train"))
    return qa.parse_babi(text.splitlines(), f"generated-qa{task}", task)


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_bytes_other_seed_other_bytes(task):
    first = generate_file(task, 200, file_rng(7, task, "train"))
    assert first == generate_file(task, 200, file_rng(7, task, "train"))
    assert first != generate_file(task, 200, file_rng(8, task, "train"))
    assert first != generate_file(task, 200, file_rng(7, task, "test"))


@pytest.mark.parametrize("task", TASKS)
def test_upstream_line_format_and_exact_question_count(task):
    text = generate_file(task, 257, random.Random(task))
    assert text.endswith("\n") and all(LINE.match(line) for line in text.splitlines())
    questions = qa.parse_babi(text.splitlines(), "generated", task)
    assert len(questions) == 257
    assert "\t" in text.splitlines()[-1], "the file ends on its last question"


def _words(text: str) -> set[str]:
    return set(qa.tokenize(text.replace(",", " ")))


@pytest.mark.parametrize("task", TASKS)
def test_supporting_facts_are_story_sentences_linked_to_the_question(task):
    """Each supporting id names a sentence of the story told before the question, and the supporting
    sentences form a chain from the question (its words) to the answer: every one shares a word
    with the question, the answer, or another supporting sentence that does."""
    stop = {"the", "is", "a", "of", "to", "in", "what", "where", "who", "how", "did", "does", "was", "there",
            "than", "an", "are", "you", "go", "from", "before", "will", "why", "get", "be", "it"}
    for q in generated(task):
        assert q.supporting, q.source
        by_id = dict(zip(q.line_ids, q.sentences))
        assert set(q.supporting) <= set(by_id), (q.source, q.supporting)
        linked = (_words(q.text) | _words(q.answer)) - stop
        pending = [_words(by_id[i]) - stop for i in q.supporting]
        while pending:
            joined = [words for words in pending if words & linked]
            if not joined:
                break
            for words in joined:
                linked |= words
                pending.remove(words)
        assert not pending, (q.source, q.text, q.answer, [by_id[i] for i in q.supporting])


@pytest.mark.parametrize("task", TASKS)
def test_vocabulary_within_the_upstream_task(task, upstream_en_dir):
    """Generated words and answers are words the upstream task uses (same templates, same world)."""
    real = babi.read_file(babi.task_file(upstream_en_dir, task, "train"), task)
    real_words = {w for q in real for s in q.story + (q.question,) for w in s}
    real_answers = {q.answer for q in real}
    made = generated(task)
    made_words = {w for q in made for s in q.story + (q.question,) for w in s}
    assert made_words <= real_words, sorted(made_words - real_words)
    assert {q.answer for q in made} <= real_answers, sorted({q.answer for q in made} - real_answers)


def test_files_are_named_and_read_like_upstream(tmp_path):
    paths = write_task_files(1, tmp_path, train=40, test=30, seed=1)
    assert [p.name for p in paths] == ["qa1_single-supporting-fact_train.txt", "qa1_single-supporting-fact_test.txt"]
    assert len(babi.read_file(babi.task_file(tmp_path, 1, "train"), 1)) == 40
    assert len(babi.read_file(babi.task_file(tmp_path, 1, "test"), 1)) == 30


def _replay_task1(q: qa.Question) -> tuple[str, int]:
    """An independent solver for task 1: replay every move in the story; the last one of the actor wins."""
    actor = q.question[-1]
    where = None
    for line_id, words in zip(q.line_ids, q.story):
        if words[0] == actor:
            where = (words[-1], line_id)
    assert where is not None, q.source
    return where


def test_task1_answers_and_support_replay_the_moves():
    for q in generated(1, 1000):
        assert _replay_task1(q) == (q.answer, q.supporting[0])
        assert len(q.story) <= 10 and len(q.supporting) == 1


def test_generate_command_writes_the_same_bytes_for_the_same_seed(cli, tmp_path):
    for name in ("a", "b"):
        result = cli("data", "generate", "babi", "--task", "1", "--task", "2", "--train", "50", "--test", "20",
                     "--seed", "7", "--out", tmp_path / name)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == str(tmp_path / name)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["qa1_single-supporting-fact_test.txt", "qa1_single-supporting-fact_train.txt",
                     "qa2_two-supporting-facts_test.txt", "qa2_two-supporting-facts_train.txt"]
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)


def test_generate_command_writes_upstreams_1k_sizes_by_default(cli, tmp_path):
    """Without --train and --test, 1,000 questions in each file, as in the upstream 1k set."""
    result = cli("data", "generate", "babi", "--task", "1", "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    for split in ("train", "test"):
        text = (tmp_path / f"qa1_single-supporting-fact_{split}.txt").read_text()
        assert sum("?" in line for line in text.splitlines()) == 1000, split


def test_generate_command_bad_input(cli, tmp_path):
    assert_one_line_error(cli("data", "generate", "babi", "--task", "21", "--out", tmp_path), "unknown bAbI task '21'")
    assert_one_line_error(cli("data", "generate", "text8", "--out", tmp_path), "no simulator for 'text8'; available: babi, ptb")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(cli("data", "generate", "babi", "--out", tmp_path / "file"), "not a folder")


def test_a_model_trains_on_generated_data_and_answers_real_questions(cli, tmp_path, upstream_en_dir):
    """The quickstart without network: generated task 1 in, a model that answers the real test set."""
    assert cli("data", "generate", "babi", "--task", "1", "--out", tmp_path / "data").exit_code == 0
    trained = cli("train", "babi", "--task", "1", "--data-dir", tmp_path / "data", "--out", tmp_path / "run",
                  "--epochs", "15", "--ls-epochs", "5", "--json")
    assert trained.exit_code == 0, trained.stderr
    real = cli("eval", tmp_path / "run", "--data-dir", upstream_en_dir, "--json")
    assert real.exit_code == 0, real.stderr
    assert json.loads(real.stdout)["mean_test_error"] < 5.0
