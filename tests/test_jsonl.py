"""`jsonl`, question answering on your own data: registered as a plugin is, trained like bAbI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import ROOT, assert_one_line_error

EPOCHS = ["--epochs", "3", "--ls-epochs", "2"]


def test_jsonl_is_registered_through_the_entry_point_group_a_plugin_uses():
    """Importing the registry does not import tasks.jsonl: it arrives through the installed
    package's `memn2n.tasks` entry point, as a third-party task would."""
    code = ("import sys; import tasks; assert 'tasks.jsonl' not in sys.modules; "
            "from importlib.metadata import entry_points; "
            "print([e.value for e in entry_points(group='memn2n.tasks') if e.name == 'jsonl']); "
            "print(type(tasks.get_task('jsonl')).__module__, 'tasks.jsonl' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split("\n")[:2] == ["['tasks.jsonl:JsonlTask']", "tasks.jsonl True"]


@pytest.fixture(scope="module")
def task2_jsonl(tmp_path_factory, en_dir) -> Path:
    """bAbI task 2 written as jsonl: train and valid as `memn2n train babi` splits them (seed 0, 10%)."""
    from tasks import get_task
    from tasks.qa import split_validation, to_json

    babi, folder = get_task("babi"), tmp_path_factory.mktemp("jsonl")
    train, valid = split_validation(babi.read(en_dir, [2], "train"), 0.1, 0)
    for split, questions in (("train", train), ("valid", valid), ("test", babi.read(en_dir, [2], "test"))):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(to_json(q)) + "\n" for q in questions))
    return folder


def test_babi_as_jsonl_trains_the_same_model_as_the_original_files(cli, task2_jsonl, en_dir, tmp_path):
    """Same questions, same split, same seed: the same weights, bit for bit, and the same errors;
    then eval, predict and visualize take the jsonl run."""
    ours, upstream = tmp_path / "jsonl", tmp_path / "babi"
    trained = cli("train", "jsonl", "--data-dir", task2_jsonl, "--out", ours, "--json", *EPOCHS)
    assert trained.exit_code == 0, trained.stderr
    original = cli("train", "babi", "--task", "2", "--data-dir", en_dir, "--out", upstream, "--json", *EPOCHS)
    rows, expected = json.loads(trained.stdout)["tasks"], json.loads(original.stdout)["tasks"]
    assert [{k: v for k, v in r.items() if k != "task"} for r in rows] == [{k: v for k, v in r.items() if k != "task"} for r in expected]
    a, b = load_file(ours / "model.safetensors"), load_file(upstream / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert json.loads((ours / "config.json").read_text())["data"]["files"].keys() == {"train.jsonl", "valid.jsonl", "test.jsonl"}

    evaluated = cli("eval", ours, "--json")
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["tasks"][0]["test_error"] == rows[0]["test_error"]
    # One task, named by its name: "jsonl epoch ..." in the progress, a "jsonl" row in the tables.
    assert "jsonl epoch 3 (softmax" in trained.stderr and "qa1" not in trained.stderr
    for command in (["train", "jsonl", "--data-dir", task2_jsonl, "--out", tmp_path / "again", *EPOCHS], ["eval", ours]):
        table = cli(*command).stdout
        assert re.search(r"^│ +jsonl │", table, re.M) and not re.search(r"^│ +1 │", table, re.M), table
    story = tmp_path / "story.jsonl"
    story.write_text(json.dumps({"story": ["Mary got the football there.", "Mary went to the kitchen."],
                                 "question": "Where is the football?", "supporting": [0, 1]}) + "\n")
    predicted = cli("predict", story, "--checkpoint", ours, "--json")
    assert predicted.exit_code == 0, predicted.stderr
    record = json.loads(predicted.stdout)
    assert record["story"] == ["Mary got the football there.", "Mary went to the kitchen."] and "expected" not in record
    shown = cli("visualize", "--hops", "--checkpoint", ours, "--sample", "1")
    assert shown.exit_code == 0 and "Hop 3" in shown.stdout and "test.jsonl:" in shown.stdout


def test_without_valid_jsonl_training_stories_are_held_out(cli, task2_jsonl, tmp_path):
    """No valid.jsonl: 10% of train.jsonl's questions become the validation set."""
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text((task2_jsonl / f"{split}.jsonl").read_text())
    from memn2n_cli.qa.runs import load_splits
    from tasks import get_task

    splits = load_splits(get_task("jsonl"), folder, [1], 0.1, 0)
    assert (len(splits["train"]), len(splits["valid"])) == (810, 90)
    given = load_splits(get_task("jsonl"), task2_jsonl, [1], 0.1, 0)
    assert (len(given["train"]), len(given["valid"])) == (900, 100)


@pytest.mark.parametrize("line, fragment", [
    ('{"story": ["a b."], "question": "q?", "answer": "x"', "not JSON"),
    ('["a b."]', "expected a JSON object, got list"),
    ('{"story": [], "question": "q?", "answer": "x"}', "'story' must be a list of one or more non-empty strings"),
    ('{"story": "a b.", "question": "q?", "answer": "x"}', "'story' must be a list"),
    ('{"story": ["a b."], "question": "", "answer": "x"}', "'question' must be a non-empty string"),
    ('{"story": ["a b."], "question": "q?"}', "'answer' must be a non-empty string"),
    ('{"story": ["a b."], "question": "q?", "answer": "x", "supporting": [1]}', "indices into 'story' (0 to 0)"),
    ('{"story": ["a b."], "question": "q?", "answer": "x", "suporting": [0]}', "unknown field 'suporting'"),
    ('{"story": ["a b."], "question": "q?", "answer": "x", "supporting": [' + "1" * 5000 + "]}",
     "not JSON this reads: Exceeds the limit (4300 digits)"),
    ('{"story": ' + "[" * 100_000 + "]" * 100_000 + "}", "not JSON this reads: nested too deeply"),
    ('{"story": ["a b."], "question": "Where is \\ud800?", "answer": "x"}', "'question' holds half of a UTF-16 surrogate"),
    ('{"story": ["a \\udfff b."], "question": "q?", "answer": "x"}', "'story' holds half of a UTF-16 surrogate"),
])
def test_a_malformed_line_is_one_error_naming_file_and_line(cli, tmp_path, line, fragment):
    good = '{"story": ["Mary went home."], "question": "Where is Mary?", "answer": "home"}'
    (tmp_path / "train.jsonl").write_text(f"{good}\n\n{line}\n")
    (tmp_path / "test.jsonl").write_text(good + "\n")
    result = cli("train", "jsonl", "--data-dir", tmp_path, "--out", tmp_path / "run")
    assert_one_line_error(result, f"{tmp_path / 'train.jsonl'}:3: ", fragment)


def test_a_training_split_is_never_empty(cli, tmp_path):
    """--validation-fraction holds out stories of each task, but never all of them: one story of
    one question trains with 0.6 held out (it was held out, and the first epoch divided by zero)."""
    good = '{"story": ["Mary went home."], "question": "Where is Mary?", "answer": "home"}'
    (tmp_path / "train.jsonl").write_text(good + "\n")
    (tmp_path / "test.jsonl").write_text(good + "\n")
    result = cli("train", "jsonl", "--data-dir", tmp_path, "--out", tmp_path / "run", "--epochs", "2", "--ls-epochs", "1",
                 "--validation-fraction", "0.6", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tasks"][0]["test_error"] in (0.0, 100.0)


def test_missing_files_and_options_that_do_not_apply(cli, tmp_path):
    assert_one_line_error(cli("train", "jsonl", "--out", tmp_path / "run"), "pass --data-dir")
    assert_one_line_error(cli("train", "jsonl", "--data-dir", tmp_path, "--out", tmp_path / "run"), "train.jsonl: cannot read")
    assert_one_line_error(cli("train", "jsonl", "--data-dir", tmp_path, "--task", "2"), "jsonl has one task: leave out --task")


def test_sweep_jsonl(cli, task2_jsonl, tmp_path):
    """Two restarts of one configuration; the selected one is a run `eval` takes."""
    result = cli("sweep", "jsonl", "--data-dir", task2_jsonl, "--out", tmp_path / "sweep", "--restarts", "2",
                 "--workers", "1", "--json", *EPOCHS)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    cell = summary["cells"]["defaults"]["1"]
    assert cell["seed"] in (0, 1)
    evaluated = cli("eval", cell["run"], "--json")
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["tasks"][0]["test_error"] == cell["test_error"]


def test_a_sweep_without_validation_questions_is_one_line(cli, tmp_path):
    """A sweep selects its restarts, and breaks their ties, on the validation questions: with none
    (--validation-fraction 0, or too few stories to hold one out) it says so, not a KeyError."""
    good = '{"story": ["Mary went home."], "question": "Where is Mary?", "answer": "home"}'
    (tmp_path / "train.jsonl").write_text((good + "\n") * 5)
    (tmp_path / "test.jsonl").write_text(good + "\n")
    for fraction in ("0", "0.1"):  # 0.1 of 5 stories rounds to none
        result = cli("sweep", "jsonl", "--data-dir", tmp_path, "--out", tmp_path / f"sweep{fraction}", "--restarts", "1",
                     "--workers", "1", "--validation-fraction", fraction, *EPOCHS)
        assert_one_line_error(result, f"{tmp_path}: holds no validation questions for tasks [1] (--validation-fraction "
                              f"{float(fraction)} of too few stories?)")
