"""Seeded fuzzing: mutated story files, training files (bAbI, JSON lines, Penn Treebank) and run
directories (bytes flipped, and hostile ones: a config's fields replaced, files that are FIFOs,
devices, links out of the folder, JSON nested deep), read through the library's entry points
(`memn2n.load`, `answer`, `evaluate`, what `serve` and `plot` read), give a result or one
UserError, never another exception (which would reach the user as a traceback) nor a hang. A few
hundred cases in the suite; `python benchmarks/fuzz.py --cases N` runs more with the same cases
and counts the outcomes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from memn2n_cli.errors import UserError

STORIES = [
    b"1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary?\tbathroom\t1\n"
    b"4 Daniel went back to the hallway.\n5 Where is Daniel?\thallway\t4\n",
    b"Mary moved to the bathroom.\nJohn went to the hallway.\nWhere is Mary?\n\nSandra went to the garden.\nWhere is Sandra?\n",
    b'{"story": ["Mary moved to the bathroom.", "John went to the hallway."], "question": "Where is Mary?", '
    b'"answer": "bathroom", "supporting": [0]}\n{"story": ["Sandra went to the garden."], "question": "Where is Sandra?"}\n',
]
INSERTS = [b"\t", b"?", b"\n", b"\n\n", b" ", b"{", b"}", b'"', b"[", b"]", b",", b"[/]", b"[bold]", "\u00b2".encode(),
           "\u3000".encode(), "\u0967".encode(), b"\x00", b"\xff", b"\xc3", b"0", b"-1", b"9" * 40, b"1 ", b"null",
           b'"supporting": [99]', b"\r\n"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits: flip a byte, insert a troublesome token, delete or duplicate a
    stretch, swap two lines, or cut the end off."""
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        edit = rng.randrange(6)
        if edit == 0 and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        elif edit == 1:
            data = data[:at] + rng.choice(INSERTS) + data[at:]
        elif edit == 2:
            data = data[:at] + data[at + rng.randint(1, 20):]
        elif edit == 3:
            data = data[:at] + data[at:at + rng.randint(1, 60)] * rng.randint(2, 4) + data[at:]
        elif edit == 4:
            lines = data.split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        else:
            data = data[:at]
    return data


def outcome(attempt) -> str:
    """"ok" or "refused" (a UserError); any other exception fails the test with its case."""
    try:
        attempt()
    except UserError:
        return "refused"
    return "ok"


def story_case(rng: random.Random, model, vocab, path: Path) -> str:
    from memn2n_cli.qa.inference import predictions
    from tasks.qa import read_stories

    raw = mutate(rng.choice(STORIES), rng)
    path.write_bytes(raw)
    return outcome(lambda: list(predictions(model, vocab, read_stories(raw, path))))


def training_file_case(rng: random.Random, folder: Path, babi_lines: bytes, task) -> str:
    """A mutated bAbI training file, or a mutated train.jsonl, read as its task reads it."""
    from tasks import get_task

    if rng.random() < 0.5:
        (folder / "qa1_fuzz_train.txt").write_bytes(mutate(babi_lines, rng))
        return outcome(lambda: task.read(folder, [1], "train"))
    (folder / "train.jsonl").write_bytes(mutate(STORIES[2].replace(b'"Where is Sandra?"}', b'"Where is Sandra?", "answer": "garden"}'), rng))
    return outcome(lambda: get_task("jsonl").read(folder, [1], "train"))


def run_directory_case(rng: random.Random, source: Path, folder: Path) -> str:
    """A copy of a trained run with one file mutated (and, half the time, its manifest removed, as
    a run from before manifests or edited by hand), loaded and asked a question."""
    from memn2n_cli.checkpoint import load_model
    from memn2n_cli.qa.inference import predictions
    from tasks.qa import read_stories

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder)
    name = rng.choice(["config.json", "vocab.json", "model.safetensors", "manifest.json"])
    original = (folder / name).read_bytes()
    mutated = mutate(original, rng)
    (folder / name).write_bytes(mutated)
    if rng.random() < 0.5:
        (folder / "manifest.json").unlink(missing_ok=True)
    elif name != "manifest.json" and mutated != original:
        with pytest.raises(UserError):  # a damaged file is never read as it is (the manifest, or its own check)
            load_model(folder)
        return "refused"

    def ask() -> None:
        model, _, vocab = load_model(folder)
        list(predictions(model, vocab, read_stories(STORIES[0], "story")))

    return outcome(ask)


@contextmanager
def deadline(seconds: int = 30):
    """A TimeoutError, rather than a hang, past ``seconds``: reading a FIFO waits for ever."""
    def hung(*_):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# Values a hand, a bug or an attacker may put in a config.json: other types, sizes at and past
# their bounds, nesting. Sizes are drawn in pairs too: each within its own bound, not together.
VALUES = [20.0, "20", True, False, None, -1, 0, 1, 2**63, 10**7, 10**7 + 1, 10_000, 100_000, 100, [], {}, [1],
          [[[[]]]], "x" * 1000, 1e308, float("nan"), float("inf"), {"a": {"b": {"c": 1}}}, "pe", "layerwise"]
SIZES = {"vocab_size": [10**7, 12_500, 2], "dim": [10_000, 1], "hops": [100, 1], "memory_size": [100_000, 1],
         "sentence_size": [10**7, 1]}
FILES = ["config.json", "vocab.json", "model.safetensors", "manifest.json", "history.jsonl", "README.md", "metrics.json"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile_run_case(rng: random.Random, source: Path, folder: Path, outside: Path) -> str:
    """A copy of a trained run made hostile: a config field of another type or size, two sizes at
    once, or a file that is a FIFO, a device, a link out of the folder, a folder, empty or nested
    deep (half the time with its manifest, half without); read through an entry point of the
    library taken at random. ``outside``: a regular file outside the folder."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder)
    if rng.random() < 0.5:
        (folder / "manifest.json").unlink()
    damage = rng.randrange(3)
    if damage < 2:
        config = json.loads((folder / "config.json").read_text())
        if damage == 0:
            section = rng.choice([config, config["model"], config["model"], config["training"], config["data"]])
            section[rng.choice(sorted(section) + ["extra"])] = rng.choice(VALUES + [json.loads(nested(rng.choice([40, 500])))])
        else:
            for key in rng.sample(sorted(SIZES), 2):
                config["model"][key] = rng.choice(SIZES[key])
        (folder / "config.json").write_text(json.dumps(config))
    else:
        path = folder / rng.choice(FILES)
        path.unlink(missing_ok=True)
        kind = rng.randrange(8)
        if kind == 0:
            os.mkfifo(path)
        elif kind < 4:
            os.symlink(["/dev/zero", "/dev/urandom", str(outside)][kind - 1], path)
        elif kind == 4:
            path.mkdir()
        elif kind == 5:
            path.write_bytes(b"")
        elif kind == 6:
            path.write_text(nested(rng.choice([100, 100_000])))
        else:
            os.symlink(path.name, path)  # a link to itself
    return outcome(lambda: entry_point(rng, folder))


def entry_point(rng: random.Random, run: Path) -> None:
    """One of the library's ways into a run, as a user or `serve` takes it."""
    import memn2n
    from memn2n_cli.qa.web import Runs
    from memn2n_cli.plots import read_plot

    with deadline():
        way = rng.randrange(5)
        if way == 0:
            memn2n.load(run).answer(STORIES[1].decode())
        elif way == 1:
            memn2n.answer(run, STORIES[0].decode(), top_k=2)
        elif way == 2:
            (run.parent / "no-runs").mkdir(exist_ok=True)
            runs, _ = Runs.find(run, roots=[run.parent / "no-runs"])
            runs.load_default()
            runs.about(None)
            runs.listing()
        elif way == 3:
            read_plot(run)
        else:
            memn2n.evaluate(run, split=rng.choice(["valid", "test"]))


def ptb_case(rng: random.Random, folder: Path, lines: list[str]) -> str:
    from memn2n_cli.lm.training import check_lengths
    from tasks import get_task

    for split, part in (("train", lines[:60]), ("valid", lines[60:70]), ("test", lines[70:80])):
        text = "".join(part).encode()
        (folder / f"ptb.{split}.txt").write_bytes(mutate(text, rng) if rng.random() < 0.4 else text)

    def load() -> None:
        check_lengths(get_task("ptb").load(folder), 25, folder)

    return outcome(load)


def test_story_files(trained_run, tmp_path):
    from memn2n_cli.checkpoint import load_model

    model, _, vocab = load_model(trained_run[0])
    rng = random.Random(0)
    outcomes = [story_case(rng, model, vocab, tmp_path / "story.txt") for _ in range(300)]
    assert {"ok", "refused"} <= set(outcomes)  # both kinds of case were reached


def test_training_files(en_dir, tmp_path):
    from tasks import get_task
    from tasks.babi import task_file

    babi_lines = b"\n".join(task_file(en_dir, 1, "train").read_bytes().split(b"\n")[:40]) + b"\n"
    rng, task = random.Random(1), get_task("babi")
    outcomes = [training_file_case(rng, tmp_path, babi_lines, task) for _ in range(300)]
    assert {"ok", "refused"} <= set(outcomes)


def test_run_directories(trained_run, tmp_path):
    rng = random.Random(2)
    outcomes = [run_directory_case(rng, trained_run[0], tmp_path / "run") for _ in range(120)]
    assert {"ok", "refused"} <= set(outcomes)


def test_hostile_run_directories_through_the_library(trained_run, tmp_path):
    rng = random.Random(4)
    (tmp_path / "outside.json").write_text('{"words": ["<nil>", "a"], "answers": ["a"]}')
    outcomes = [hostile_run_case(rng, trained_run[0], tmp_path / "run", tmp_path / "outside.json") for _ in range(150)]
    assert {"ok", "refused"} <= set(outcomes)


def test_penn_treebank_files(ptb_lines, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # `datasets`' cache of these small corpora
    rng = random.Random(3)
    outcomes = [ptb_case(rng, tmp_path, ptb_lines) for _ in range(30)]
    assert {"ok", "refused"} <= set(outcomes)


def test_the_mutations_are_seeded():
    assert [mutate(STORIES[0], random.Random(7)) for _ in range(2)] == [mutate(STORIES[0], random.Random(7))] * 2
