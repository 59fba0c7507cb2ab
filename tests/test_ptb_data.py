"""Penn Treebank data: the generated stand-in, finding data in the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks import get_task, ptb_generator
from tasks.lm import EOS, UNK
from tests.conftest import assert_one_line_error

FILES = ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]
TINY = ["--dim", "8", "--hops", "1", "--memory-size", "4", "--batch-size", "16", "--max-steps", "1"]


def test_the_generated_corpus_has_the_shape_of_ptb():
    lines = ptb_generator.corpus(2000, 200, list(range(1, 21)), seed=0)
    assert {split: len(ls) for split, ls in lines.items()} == {"train": 2000, "valid": 200, "test": 200}
    words = {split: [line.split() for line in ls] for split, ls in lines.items()}
    for split, ls in lines.items():
        assert all(line.startswith(" ") and line.endswith(" \n") and line == line.lower() for line in ls)
        assert all(w.isalpha() or w == UNK for line in words[split] for w in line)  # no punctuation, no digits
        assert 19 <= sum(map(len, words[split])) / len(ls) <= 23  # PTB's ~21 words a line
    train = {w for line in words["train"] for w in line}
    assert len(train) == ptb_generator.VOCABULARY + 1 and UNK in train  # the 100 most frequent, then <unk>
    assert all(w in train for split in ("valid", "test") for line in words[split] for w in line)
    assert ptb_generator.corpus(2000, 200, list(range(1, 21)), seed=0) == lines
    assert ptb_generator.corpus(2000, 200, list(range(1, 21)), seed=1)["train"] != lines["train"]
    few = ptb_generator.corpus(3, 1, [1], seed=0)  # fewer than 100 distinct words: <unk> still occurs in training
    assert UNK in "".join(few["train"]).split()


def test_generate_ptb_writes_a_marked_folder_in_the_cache_that_ptb_reads(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    generated = tmp_path / "cache" / "memn2n" / "ptb" / "generated"
    result = cli("data", "generate", "ptb", "--train", "300", "--test", "40", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(generated)
    assert sorted(p.name for p in generated.iterdir()) == sorted(FILES + [ptb_generator.MARKER])
    assert "Not the Penn Treebank" in (generated / ptb_generator.MARKER).read_text()
    first = {name: (generated / name).read_bytes() for name in FILES}
    assert first["ptb.train.txt"].decode() == "".join(ptb_generator.corpus(300, 40, list(range(1, 21)), 3)["train"])
    again = cli("data", "generate", "ptb", "--train", "300", "--test", "40", "--seed", "3", "--out", tmp_path / "again")
    assert again.exit_code == 0 and all((tmp_path / "again" / n).read_bytes() == b for n, b in first.items())
    corpus = get_task("ptb").load(generated)
    assert EOS in corpus.words and UNK in corpus.words and len(corpus.words) == ptb_generator.VOCABULARY + 2
    # The real files are never overwritten by the stand-in.
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "ptb.train.txt").write_text(" the company said \n")
    assert_one_line_error(cli("data", "generate", "ptb", "--out", tmp_path / "real"), "memn2n did not generate")
    assert (tmp_path / "real" / "ptb.train.txt").read_text() == " the company said \n"


def test_generate_bad_input(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert_one_line_error(cli("data", "generate", "babi"), "pass --out DIR")  # bAbI has no folder of its own to fill
    assert_one_line_error(cli("data", "generate", "ptb", "--task", "21"), "unknown bAbI task '21'")


def test_train_ptb_without_data_says_which_files_and_where_to_get_them(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert_one_line_error(cli("train", "ptb", "--out", tmp_path / "run"), "no ptb data",
                          "ptb.train.txt, ptb.valid.txt and ptb.test.txt", "`memn2n data generate ptb`")
    assert_one_line_error(cli("train", "ptb", "--data-dir", tmp_path, "--out", tmp_path / "run"),
                          "missing Penn Treebank file ptb.train.txt", "`memn2n data generate ptb`")


def test_train_ptb_finds_the_download_first_and_the_generated_stand_in_else_and_says_which(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    downloaded = tmp_path / "cache" / "memn2n" / "ptb"
    generated = downloaded / "generated"
    assert cli("data", "generate", "ptb", "--train", "100", "--test", "10").exit_code == 0
    stand_in = cli("train", "ptb", *TINY, "--out", tmp_path / "on-generated")
    assert stand_in.exit_code == 0, stand_in.stderr
    assert f"info: ptb data: {generated}, sentences of the bAbI simulator" in stand_in.stderr
    assert "not the real corpus" in stand_in.stderr
    config = json.loads((tmp_path / "on-generated" / "config.json").read_text())
    assert config["data"]["dir"] == str(generated.resolve())
    assert "not the real corpus" in cli("eval", tmp_path / "on-generated").stderr  # named by the run, still said
    # Files that `memn2n data download ptb` would have put in the cache (no marker) come first.
    for name in FILES:
        shutil.copy(generated / name, downloaded / name)
    real = cli("train", "ptb", *TINY, "--out", tmp_path / "on-download")
    assert real.exit_code == 0, real.stderr
    assert f"info: ptb data: {downloaded} (`memn2n data download ptb`)" in real.stderr
    assert "not the real corpus" not in real.stderr
    assert json.loads((tmp_path / "on-download" / "config.json").read_text())["data"]["dir"] == str(downloaded.resolve())
