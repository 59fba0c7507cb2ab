"""`memn2n predict`, `memn2n visualize` and the attention diagnostics of `eval`, on real task-1 data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from memn2n_cli.checkpoint import load_model
from memn2n_cli.qa.inference import predictions
from tasks.babi import read_file, task_file
from tests.conftest import ROOT, assert_one_line_error

STORY = "Mary moved to the bathroom.\nJohn went to the hallway.\nWhere is Mary?\n"


def babi_to_plain(text: str) -> str:
    """The plain-text format of upstream bAbI lines: no ids, no answers, a blank line between stories."""
    lines = []
    for line in text.splitlines():
        number, _, rest = line.partition(" ")
        if number == "1" and lines:
            lines.append("")
        lines.append(rest.split("\t")[0].strip())
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def test_stories(en_dir, tmp_path_factory):
    """The first 30 stories of the real task-1 test file, in both formats."""
    lines = task_file(en_dir, 1, "test").read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("1 ")]
    babi_text = "\n".join(lines[: starts[30]]) + "\n"
    folder = tmp_path_factory.mktemp("stories")
    (folder / "babi.txt").write_text(babi_text)
    (folder / "plain.txt").write_text(babi_to_plain(babi_text))
    return folder / "babi.txt", folder / "plain.txt"


def test_both_formats_give_the_same_answers(cli, trained_run, test_stories):
    run, _ = trained_run
    babi, plain = (cli("predict", path, "-c", run) for path in test_stories)
    assert babi.exit_code == plain.exit_code == 0, (babi.stderr, plain.stderr)
    babi_lines, plain_lines = babi.stdout.splitlines(), plain.stdout.splitlines()
    assert len(babi_lines) == 150  # task 1: 5 questions per story
    assert [line.split("\t")[:3] for line in babi_lines] == [line.split("\t") for line in plain_lines]
    assert all(line.split("\t")[3] == "right" or line.split("\t")[3].startswith("wrong: ") for line in babi_lines)
    assert plain.stderr.strip() == "" and babi.stderr.startswith("accuracy ")


def test_a_byte_order_mark_is_no_part_of_the_story(cli, trained_run, test_stories, tmp_path):
    """A file saved with a UTF-8 byte-order mark (Windows editors write one) answers as without it:
    the mark made the first line no bAbI line and the first word unknown."""
    for path in test_stories:
        marked = tmp_path / path.name
        marked.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        plain, with_mark = (cli("predict", story, "-c", trained_run[0]) for story in (path, marked))
        assert with_mark.exit_code == 0 and (with_mark.stdout, with_mark.stderr) == (plain.stdout, plain.stderr), path


def test_predictions_agree_with_eval_on_the_test_file(trained_run, en_dir):
    run, summary = trained_run
    model, _, vocab = load_model(run)
    questions = read_file(task_file(en_dir, 1, "test"), 1)
    answered = list(predictions(model, vocab, questions))
    error = 100 * sum(not p.correct for p in answered) / len(answered)
    assert error == pytest.approx(summary["tasks"][0]["test_error"])


def test_a_story_is_answered_one_batch_at_a_time_as_predict_answers_it(trained_run, en_dir, monkeypatch):
    """`memn2n predict` prints answers as they are computed: the first of the 1,000 test questions
    comes after one forward pass (batches of 512), the rest after the second, and together they
    are `predict`'s answers. Bad arguments are refused at once, not at the first answer."""
    from memn2n_cli.errors import ArgumentError
    from memn2n_cli.model import MemN2N
    from memn2n_cli.recipes import qa as recipe

    run, _ = trained_run
    path = task_file(en_dir, 1, "test")
    passes = []
    forward = MemN2N.forward
    monkeypatch.setattr(MemN2N, "forward", lambda self, *a, **k: passes.append(1) or forward(self, *a, **k))
    answers = recipe.answers(run, raw=path.read_bytes(), name=str(path), model_task=None, top_k=3, next_words=None)
    first = next(answers)
    assert len(passes) == 1
    streamed = [first, *answers]
    assert len(passes) == 2
    model, _, vocab = load_model(run)
    whole = list(predictions(model, vocab, read_file(path, 1), batch_size=1000))  # in one batch
    assert len(streamed) == len(whole) == 1000
    assert [(p.answer, p.probability, p.top, p.attention) for p in streamed] == \
        [(p.answer, p.probability, p.top, p.attention) for p in whole]
    with pytest.raises(ArgumentError):
        recipe.answers(run, raw=path.read_bytes(), name=str(path), model_task=None, top_k=0, next_words=None)


def test_stdin_and_file_give_the_same_output(cli, trained_run, test_stories, monkeypatch):
    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    run, _ = trained_run
    from_file = cli("predict", test_stories[1], "-c", run, "--json")
    from_stdin = CliRunner().invoke(app, ["predict", "-", "-c", str(run), "--json"], input=test_stories[1].read_bytes())
    assert from_file.exit_code == from_stdin.exit_code == 0
    strip_source = lambda out: [{k: v for k, v in json.loads(l).items() if k != "source"} for l in out.splitlines()]
    assert strip_source(from_file.stdout) == strip_source(from_stdin.stdout)


def test_json_schema_and_attention_is_a_share_of_one(cli, trained_run, test_stories):
    run, _ = trained_run
    result = cli("predict", test_stories[0], "-c", run, "--json", "--top-k", "4")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 150
    for r in records:
        assert set(r) == {"question", "answer", "probability", "top_k", "story", "attention", "source", "expected", "correct",
                          "supporting"}
        assert len(r["top_k"]) == 4 and r["top_k"][0] == {"answer": r["answer"], "probability": r["probability"]}
        assert [t["probability"] for t in r["top_k"]] == sorted((t["probability"] for t in r["top_k"]), reverse=True)
        assert len(r["attention"]) == 3  # one list per hop
        for hop in r["attention"]:
            # The empty memory slots (zero vectors, as in the authors' code) take the rest of the softmax.
            assert len(hop) == len(r["story"]) and 0.0 < sum(hop) <= 1.0 + 1e-5
        assert r["correct"] == (r["answer"] == r["expected"])
        assert len(r["supporting"]) == 1 and r["story"][r["supporting"][0]].split()[0] in r["question"]  # task 1: where the person went


def test_the_story_is_the_sentences_before_each_question(cli, trained_run, tmp_path):
    run, _ = trained_run
    (tmp_path / "s.txt").write_text(STORY + "Mary travelled to the kitchen.\nWhere is Mary?\n")
    records = [json.loads(l) for l in cli("predict", tmp_path / "s.txt", "-c", run, "--json").stdout.splitlines()]
    assert records[0]["story"] == ["Mary moved to the bathroom.", "John went to the hallway."]
    assert records[1]["story"][-1] == "Mary travelled to the kitchen." and len(records[1]["story"]) == 3


def test_unknown_words_are_named_once_and_still_answered(cli, trained_run, tmp_path):
    run, _ = trained_run
    (tmp_path / "s.txt").write_text("Mary zoomed to the bathroom.\nWhere is Mary?\nMary zoomed to the moon.\nWhere is Mary?\n")
    result = cli("predict", tmp_path / "s.txt", "-c", run)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2
    warnings = [l for l in result.stderr.splitlines() if "never saw" in l]
    assert len(warnings) == 1 and "moon" in warnings[0] and "zoomed" in warnings[0]


def test_a_story_longer_than_memory_keeps_the_most_recent_sentences(cli, trained_run, tmp_path):
    run, _ = trained_run
    memory = load_model(run)[0].config.memory_size
    sentences = [f"{name} went to the {place}." for name, place in zip(["Mary", "John"] * 20, ["garden", "office"] * 20)]
    (tmp_path / "s.txt").write_text("\n".join(sentences[: memory + 5]) + "\nWhere is Mary?\n")
    result = cli("predict", tmp_path / "s.txt", "-c", run, "--json")
    assert result.exit_code == 0 and "memory holds" in result.stderr
    assert json.loads(result.stdout)["story"] == sentences[5: memory + 5]


def test_newest_run_is_the_default(cli, trained_run, tmp_path, monkeypatch):
    run, _ = trained_run
    shutil.copytree(run, tmp_path / "checkpoints" / "only")
    (tmp_path / "s.txt").write_text(STORY)
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "s.txt")
    assert result.exit_code == 0 and "using checkpoints/only" in result.stderr


def test_a_run_of_several_models_needs_task(cli, trained_run, tmp_path):
    run, _ = trained_run
    shutil.copytree(run, tmp_path / "group" / "qa1")
    shutil.copytree(run, tmp_path / "group" / "qa4")
    config = json.loads((tmp_path / "group" / "qa4" / "config.json").read_text())
    (tmp_path / "group" / "qa4" / "config.json").write_text(json.dumps({**config, "tasks": [4]}))  # as if trained on 4
    (tmp_path / "group" / "qa4" / "manifest.json").unlink()  # edited by hand
    (tmp_path / "s.txt").write_text(STORY)
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", tmp_path / "group"), "pass --task N")
    assert cli("predict", tmp_path / "s.txt", "-c", tmp_path / "group", "--task", "4").exit_code == 0
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", tmp_path / "group", "--task", "7"), "no model for task 7")
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", run, "--task", "2"), "holds a model of task 1, not of task 2")


@pytest.mark.parametrize("content, fragments", [
    (b"", ["empty file"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["not a text file"]),
    (b"Mary went home.\nJohn went out.\n", ["s.txt:1:", "story with no question"]),
    (b"Where is Mary?\n", ["s.txt:1:", "question with no sentence before it"]),
    (b"1 Mary went home.\n3 Where is Mary?\n", ["s.txt:2:", "does not follow"]),
    ("\u3000\n \n".encode(), ["s.txt", "empty file"]),  # Unicode blanks only
    ("1 Mary went home.\n\u00b2 Where is Mary?\thome\t1\n".encode(), ["s.txt:2:", "expected '<id> <sentence>'"]),
    (b"1 Mary went home.\n2 Where is Mary?\thome\t" + b"9" * 5000 + b"\n", ["s.txt:2:", "supporting ids must be line numbers"]),
    (b"1" * 5000 + b" Mary went home.\n", ["s.txt:1:", "expected '<id> <sentence>'"]),
    (b"Mary " * 160_000 + b"went home.\nWhere is Mary?\n", ["s.txt:1:", "a sentence of 160,002 words (at most 1,000)"]),
])
def test_bad_story_input(cli, trained_run, tmp_path, content, fragments):
    (tmp_path / "s.txt").write_bytes(content)
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", trained_run[0]), *fragments)


def test_bad_run_or_missing_story(cli, trained_run, tmp_path):
    (tmp_path / "s.txt").write_text(STORY)
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", tmp_path / "nope"), "run directory not found")
    assert_one_line_error(cli("predict", tmp_path / "none.txt", "-c", trained_run[0]), "story file not found")
    # Something else where a story or a run is named: said as it is, not "not found".
    assert_one_line_error(cli("predict", tmp_path, "-c", trained_run[0]), f"{tmp_path}: is a folder, not a story file")
    assert_one_line_error(cli("predict", "/dev/null", "-c", trained_run[0]), "/dev/null: is a device or a pipe, not a story file")
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", tmp_path / "s.txt"), "s.txt: is a file, not a run directory")
    corrupt = shutil.copytree(trained_run[0], tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", corrupt), "model.safetensors is not the file manifest.json names")
    (corrupt / "manifest.json").unlink()  # a run from before manifests: the loader's own check
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", corrupt), "corrupt weights file")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("predict", tmp_path / "s.txt", "-c", tmp_path / "empty"), "not a memn2n run")


def test_no_run_to_default_to(cli, tmp_path, monkeypatch):
    """Without the bundled model (a checkout where it was removed), and no run: one error."""
    import memn2n_cli.qa.inference

    monkeypatch.setattr(memn2n_cli.qa.inference, "BUNDLED_RUN", tmp_path / "none")
    (tmp_path / "s.txt").write_text(STORY)
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli("predict", "s.txt"), "no trained run under ./checkpoints")


def test_a_run_of_one_model_per_task_answers_only_when_a_task_is_named(cli, trained_run, tmp_path, monkeypatch):
    """Issue 28's walk: after the README's `train babi --task all`, `predict story.txt` stopped with
    "holds one model per task", and `serve` answered every story with that run's task-1 model.
    When no run is named, such a run is passed over, saying so, unless --task picks its model."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.txt").write_text(STORY)
    joint = shutil.copytree(trained_run[0], tmp_path / "checkpoints" / "joint")
    os.utime(joint / "config.json", (1, 1))  # older than the run of one model per task
    per_task = tmp_path / "checkpoints" / "babi-task-all"
    for task in ("qa1", "qa2"):
        shutil.copytree(trained_run[0], per_task / task)
    (per_task / "metrics.json").write_text(json.dumps({"tasks": []}))
    result = cli("predict", "s.txt")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == \
        "using checkpoints/joint (checkpoints/babi-task-all: one model per task: pass --task N to use one)"
    assert cli("predict", "s.txt", "--task", "1").stderr.splitlines()[0] == "using checkpoints/babi-task-all"
    from memn2n_cli.qa.web import Runs

    runs, note = Runs.find(None)
    assert runs.default == "checkpoints/joint"  # serve has no --task: its note says how it offers the run
    assert note == "using checkpoints/joint (checkpoints/babi-task-all: one model per task: each is offered by name, RUN/qaN)"
    assert [r["checkpoint"] for r in runs.listing()] == ["checkpoints/joint", "checkpoints/babi-task-all/qa1",
                                                         "checkpoints/babi-task-all/qa2", "bundled"]  # all offered


def test_only_a_finished_run_answers_when_none_is_named(cli, trained_run, tmp_path, monkeypatch):
    """A run of one model per task stopped after its first model (no summary metrics.json) is not
    the default: the newest finished run is, else the bundled model; the note names the one left out."""
    import os

    from memn2n_cli.qa.inference import BUNDLED_RUN

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.txt").write_text(STORY)
    half = tmp_path / "checkpoints" / "babi-task-half"
    shutil.copytree(trained_run[0], half / "qa1")
    (half / "qa2").mkdir()  # task 2's model, interrupted: no config.json
    result = cli("predict", "s.txt")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith("using the joint bAbI model that comes with memn2n (no run under")
    assert result.stderr.splitlines()[0].endswith("(checkpoints/babi-task-half: not finished, so not used unless named)")
    finished = shutil.copytree(trained_run[0], tmp_path / "checkpoints" / "task1")
    os.utime(finished / "config.json", (1, 1))  # older than the half run
    result = cli("predict", "s.txt")
    assert result.stderr.splitlines()[0] == "using checkpoints/task1 (checkpoints/babi-task-half: not finished, so not used unless named)"
    (half / "metrics.json").write_text(json.dumps({"tasks": []}))  # the summary, written once its last model is
    assert cli("predict", "s.txt", "--task", "1").stderr.splitlines()[0] == "using checkpoints/babi-task-half"
    assert BUNDLED_RUN.is_dir()


def test_bundled_names_the_model_that_comes_with_memn2n_wherever_a_run_is_named(cli, trained_run, tmp_path, monkeypatch):
    """`-c bundled` (predict, visualize, serve), `memn2n.load("bundled")`: the bundled model, unless
    the working folder holds a folder of that name, which is then the run named."""
    import memn2n
    from memn2n_cli.qa.inference import BUNDLED_RUN
    from memn2n_cli.qa.web import Runs

    monkeypatch.chdir(tmp_path)
    story, (_, *printed) = readme_transcript()
    (tmp_path / "story.txt").write_text(story)
    answered = cli("predict", "story.txt", "-c", "bundled")
    assert answered.exit_code == 0 and answered.stdout.splitlines() == printed, answered.stderr
    shown = cli("visualize", "story.txt", "-c", "bundled", "--hops")
    assert shown.exit_code == 0 and shown.stdout.count("Prediction: ") == 3, shown.stderr
    assert memn2n.load("bundled").config["tasks"] == list(range(1, 21)) and memn2n.load("bundled").path == BUNDLED_RUN
    runs, note = Runs.find(Path("bundled"))
    assert runs.default == "bundled" and note is None
    shutil.copytree(trained_run[0], tmp_path / "bundled")
    assert memn2n.load("bundled").config["tasks"] == [1]


def test_a_story_the_model_cannot_read_but_the_bundled_one_can_says_so(cli, trained_run, tmp_path):
    """The task-1 model asked a task-16 story: its words are unknown to it, and the line after the
    warning names the bundled model, which knows them all; not for a word no model knows, nor when
    the bundled model is the one asked."""
    (tmp_path / "s.txt").write_text("Lily is a frog.\nLily is white.\nGreg is a frog.\nWhat color is Greg?\n")
    hint = "the joint bAbI model that comes with memn2n knows them all: ask it with -c bundled"
    asked = cli("predict", tmp_path / "s.txt", "-c", trained_run[0])
    assert asked.exit_code == 0, asked.stderr
    warning, suggestion = asked.stderr.splitlines()
    assert warning.startswith("warning: words this model never saw") and "greg" in warning
    assert suggestion.startswith(f"warning: {hint}")
    assert hint not in cli("predict", tmp_path / "s.txt", "-c", "bundled").stderr
    (tmp_path / "s.txt").write_text("Mary went to the xyzzy.\nWhere is Mary?\n")
    assert hint not in cli("predict", tmp_path / "s.txt", "-c", trained_run[0]).stderr


def test_visualize_shows_every_sentence_and_a_column_per_hop(cli, trained_run, tmp_path):
    (tmp_path / "s.txt").write_text(STORY + "Mary travelled to the kitchen.\nWhere is Mary?\n")
    result = cli("visualize", tmp_path / "s.txt", "-c", trained_run[0], "--hops")
    assert result.exit_code == 0, result.stderr
    header = next(l for l in result.stdout.splitlines() if "Story" in l)
    assert header.split()[1:] == ["Hop", "1", "Hop", "2", "Hop", "3"]
    for sentence in ("Mary moved to the bathroom.", "John went to the hallway.", "Mary travelled to the kitchen."):
        assert sentence in result.stdout
    assert result.stdout.count("Question: Where is Mary?") == 2 and "Prediction: " in result.stdout


def test_user_text_is_shown_as_written_and_html_is_saved(cli, trained_run, tmp_path):
    """Rich markup in a story is the user's text, not styling; --out FILE.html writes the page."""
    (tmp_path / "s.txt").write_text("Mary went to the [bold]hallway[/].\nWhere is Mary?\n")
    result = cli("visualize", tmp_path / "s.txt", "-c", trained_run[0], "--out", tmp_path / "fig.html")
    assert result.exit_code == 0, result.stderr
    assert "Mary went to the [bold]hallway[/]." in result.stdout
    assert "[bold]hallway[/]" in (tmp_path / "fig.html").read_text()


def test_visualize_samples_test_stories_and_writes_svg(cli, trained_run, tmp_path, en_dir):
    svg = tmp_path / "fig2.svg"
    result = cli("visualize", "-c", trained_run[0], "--sample", "2", "--errors", "--out", svg, "--data-dir", en_dir)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("Prediction: ") == 2 and result.stdout.count("Support") == 2
    text = svg.read_text()
    assert text.startswith("<svg") and "Prediction" in text and "Hop" in text
    again = cli("visualize", "-c", trained_run[0], "--sample", "2", "--errors", "--data-dir", en_dir)
    assert again.stdout == result.stdout  # the same seed picks the same stories
    assert_one_line_error(cli("visualize", "-c", trained_run[0], "--out", tmp_path / "fig.png"), ".svg or .html")
    (tmp_path / "s.txt").write_text(STORY)  # --errors samples the test questions: with a story it was ignored
    assert_one_line_error(cli("visualize", tmp_path / "s.txt", "-c", trained_run[0], "--errors"),
                          "--errors picks among the test questions: it takes no story")


def test_eval_attention_on_support_matches_the_predictions(cli, trained_run, en_dir):
    run, _ = trained_run
    result = cli("eval", run, "--json", "--data-dir", en_dir)
    row = json.loads(result.stdout)["tasks"][0]
    model, _, vocab = load_model(run)
    answered = list(predictions(model, vocab, read_file(task_file(en_dir, 1, "test"), 1)))
    hits = [[p.question.line_ids[p.memory[max(range(len(h)), key=h.__getitem__)]] in p.question.supporting
             for h in p.attention] for p in answered]
    per_hop = [100 * sum(h[k] for h in hits) / len(hits) for k in range(3)]
    assert row["attention_on_support"] == pytest.approx(per_hop)
    assert row["attention_on_support_any"] == pytest.approx(100 * sum(any(h) for h in hits) / len(hits))


def readme_transcript() -> tuple[str, list[str]]:
    """The README's example of `memn2n predict story.txt`: the story and the lines printed."""
    block = (ROOT / "README.md").read_text().split("$ cat story.txt\n", 1)[1].split("\n```", 1)[0]
    story, printed = block.split("$ memn2n predict story.txt\n", 1)
    return story, printed.split("\n$ ", 1)[0].splitlines()


def test_the_bundled_model_answers_before_any_training(cli, tmp_path, monkeypatch):
    """In a folder with no runs, `predict` uses the joint model that comes with memn2n, says so,
    and prints what the README shows for its story (plain text), answers and probabilities."""
    from memn2n_cli.qa.inference import BUNDLED_RUN

    assert (BUNDLED_RUN / "manifest.json").is_file()
    story, (note, *printed) = readme_transcript()
    (tmp_path / "story.txt").write_text(story)
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "story.txt")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == note and note.startswith("using the joint bAbI model that comes with memn2n")
    assert result.stdout.splitlines() == printed
    assert [line.split("\t")[1] for line in printed] == ["bathroom", "kitchen", "office"]


def test_the_bundled_model_records_no_machines_path_and_finds_data_as_every_command_does(trained_run, tmp_path,
                                                                                         monkeypatch):
    """Its config.json named the folder it was trained from on the machine that trained it, and
    visualize read test stories from there where such a folder existed. A shipped model records
    none (`forget_data_dir`, which keeps the run whole), so its data is found as any command finds
    data: here $MEMN2N_DATA_DIR."""
    from memn2n_cli.checkpoint import check_manifest, forget_data_dir
    from memn2n_cli.qa.inference import BUNDLED_RUN, QARun

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        return [s for v in value for s in strings(v)] if isinstance(value, list) else [value] if isinstance(value, str) else []

    for name in ("config.json", "metrics.json", "vocab.json"):
        assert not [s for s in strings(json.loads((BUNDLED_RUN / name).read_text())) if Path(s).is_absolute()], name
    monkeypatch.setenv("MEMN2N_DATA_DIR", str(tmp_path))
    assert QARun.load("bundled").data_dir() == tmp_path
    copy = shutil.copytree(trained_run[0], tmp_path / "copy")
    forget_data_dir(copy)
    check_manifest(copy)
    assert "dir" not in json.loads((copy / "config.json").read_text())["data"] and QARun.load(copy).data_dir() == tmp_path


def test_the_bundled_models_recorded_errors_are_what_eval_gives(cli, upstream_en_dir):
    from memn2n_cli.qa.inference import BUNDLED_RUN

    result = cli("eval", BUNDLED_RUN, "--data-dir", upstream_en_dir, "--json")
    assert result.exit_code == 0, result.stderr
    recorded = json.loads((BUNDLED_RUN / "metrics.json").read_text())["tasks"]
    assert [r["test_error"] for r in json.loads(result.stdout)["tasks"]] == [r["test_error"] for r in recorded]
