"""A third-party task, as the README's "Writing a task plugin" shows it: its own tokenizer and a
metric of its own counts, dispatched through the registry by every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.qa import QATask, Question, parse_babi, tokenize
from tasks.text import read_lines

LONG = 7  # answers of at least this many letters: hallway, bathroom, kitchen, bedroom (not garden, office)


class HyphenQA(QATask):
    """bAbI task 1 with each sentence's words joined by hyphens (``mary-moved-to-the-bathroom.``)."""

    summary = "hyphenated question answering (a test plugin)"

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text.replace("-", " "))

    def count(self, predicted: list[str], answers: list[str | None]) -> dict[str, float]:
        long = [(p, a) for p, a in zip(predicted, answers) if a is not None and len(a) >= LONG]
        return {"long_right": sum(p == a for p, a in long), "long_total": len(long)}

    def metrics(self, counts: dict) -> dict:
        figures = super().metrics(counts)
        if "long_total" in counts:  # the counts of evaluation (training's own loop has the shared ones)
            figures["long_answer_error"] = 100.0 * (1 - counts["long_right"] / max(counts["long_total"], 1))
        return figures

    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list[Question]:
        path = data_dir / f"{split}.txt"
        return parse_babi(read_lines(path), path, 1, tokenize=self.tokenize)

    def data_files(self, data_dir: Path, task_ids: list[int]) -> list[Path]:
        return [data_dir / "train.txt", data_dir / "test.txt"]


def hyphenate(line: str) -> str:
    number, _, rest = line.partition(" ")
    text, tab, after = rest.partition("\t")
    return f"{number} {'-'.join(text.split())}{tab}{after}"


@pytest.fixture
def hyphen_task(en_dir, tmp_path):
    from tasks import _REGISTRY, register_task
    from tasks.babi import task_file

    register_task("hyphen-qa")(HyphenQA)
    data = tmp_path / "hyphen"
    data.mkdir()
    for split in ("train", "test"):
        lines = read_lines(task_file(en_dir, 1, split))
        (data / f"{split}.txt").write_text("".join(hyphenate(line) + "\n" for line in lines))
    yield data
    del _REGISTRY["hyphen-qa"]


def test_a_plugin_tokenizes_and_measures_through_every_command(cli, hyphen_task, tmp_path):
    run = tmp_path / "run"
    trained = cli("train", "hyphen-qa", "--data-dir", hyphen_task, "--epochs", "15", "--ls-epochs", "5",
                  "--out", run, "--json")
    assert trained.exit_code == 0, trained.stderr
    assert "never seen in training" not in trained.stderr  # the test split's words were split as in training
    summary = json.loads(trained.stdout)
    assert summary["tasks"][0]["test_error"] < 50  # it learned: its words are words, not whole sentences
    vocab = json.loads((run / "vocab.json").read_text())["words"]
    assert "bathroom" in vocab and not any("-" in w for w in vocab)
    # eval: the task's own figure, from counts only the task takes, in --json and in the table.
    evaluated = cli("eval", run, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    row = json.loads(evaluated.stdout)["tasks"][0]
    predicted = cli("predict", hyphen_task / "test.txt", "-c", run, "--json")
    answers = [json.loads(line) for line in predicted.stdout.splitlines()]
    long = [a for a in answers if len(a["expected"]) >= LONG]
    assert 0 < len(long) < len(answers)
    assert row["long_answer_error"] == pytest.approx(100 * sum(not a["correct"] for a in long) / len(long))
    assert row["test_error"] == pytest.approx(100 * sum(not a["correct"] for a in answers) / len(answers))
    assert summary["tasks"][0]["long_answer_error"] == pytest.approx(row["long_answer_error"])  # train's summary too
    table = cli("eval", run)
    assert "long_answer_error" in table.stdout and f"{row['long_answer_error']:.1f}" in table.stdout
    task_row = next(line for line in table.stdout.splitlines() if f"{row['test_error']:.1f}" in line)
    assert task_row.split("│")[1].strip() == "hyphen-qa"  # the task's name, not its own figure's
    # predict: a story of its own, hyphenated, read with the task's tokenizer.
    (tmp_path / "story.txt").write_text("mary-moved-to-the-kitchen.\nwhere-is-mary?\n")
    story = cli("predict", tmp_path / "story.txt", "-c", run, "--json")
    assert story.exit_code == 0 and "never seen" not in story.stderr, story.stderr
    assert json.loads(story.stdout)["story"] == ["mary-moved-to-the-kitchen."]
    # sweep: the figure in each restart's results.
    swept = cli("sweep", "hyphen-qa", "--data-dir", hyphen_task, "--restarts", "1", "--epochs", "2", "--ls-epochs", "1",
                "--workers", "1", "--out", tmp_path / "sweep", "--json")
    assert swept.exit_code == 0, swept.stderr
    cell = json.loads(swept.stdout)["cells"]["defaults"]["1"]
    assert 0 <= cell["long_answer_error"] <= 100
