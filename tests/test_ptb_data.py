"""Penn Treebank data: the generated stand-in, finding data in the cache, the checked download."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading

import pytest

from tasks import get_task, ptb_generator
from tasks.lm import EOS, UNK, PennTreebank
from tests.conftest import PTB, assert_one_line_error

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


def test_a_stand_in_cut_off_between_its_files_is_marked_and_written_again(cli, tmp_path, monkeypatch):
    """The marker is renamed into place first: a write cut off after it leaves a folder every
    command refuses (files missing) and `generate` writes again, never stand-in files without
    their marker, which would be taken for the real corpus and refused by `generate`."""
    import os

    from memn2n_cli import checkpoint

    replace, renamed = os.replace, []

    def cut_off(source, target):
        if renamed:
            raise KeyboardInterrupt  # killed after the first rename
        renamed.append(target)
        replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", cut_off)
    with pytest.raises(KeyboardInterrupt):
        ptb_generator.write_corpus(tmp_path / "gen", 30, 5, [1], seed=0)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [ptb_generator.MARKER]
    assert_one_line_error(cli("train", "ptb", "--data-dir", tmp_path / "gen", "--out", tmp_path / "run", *TINY),
                          "missing ptb.train.txt")
    result = cli("data", "generate", "ptb", "--train", "30", "--test", "5", "--out", tmp_path / "gen")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == sorted(FILES + [ptb_generator.MARKER])


def test_generate_bad_input(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert_one_line_error(cli("data", "generate", "ptb", "--task", "21"), "unknown bAbI task '21'")


def test_train_ptb_without_data_says_which_files_and_where_to_get_them(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert_one_line_error(cli("train", "ptb", "--out", tmp_path / "run"), "no ptb data",
                          "ptb.train.txt, ptb.valid.txt and ptb.test.txt",
                          "`memn2n data download ptb`", "`memn2n data generate ptb`")
    assert_one_line_error(cli("train", "ptb", "--data-dir", tmp_path, "--out", tmp_path / "run"),
                          "missing ptb.train.txt (ptb data)", "`memn2n data download ptb`")


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
    assert config["data"]["dir"] == str(generated.resolve()) and config["data"]["generated"] is True
    assert "Trained on a generated stand-in for ptb" in (tmp_path / "on-generated" / "README.md").read_text()
    assert "not the real corpus" in cli("eval", tmp_path / "on-generated").stderr  # named by the run, still said
    # Files that `memn2n data download ptb` would have put in the cache (no marker) come first.
    for name in FILES:
        shutil.copy(generated / name, downloaded / name)
    real = cli("train", "ptb", *TINY, "--out", tmp_path / "on-download")
    assert real.exit_code == 0, real.stderr
    assert f"info: ptb data: {downloaded} (`memn2n data download ptb`)" in real.stderr
    assert "not the real corpus" not in real.stderr
    data = json.loads((tmp_path / "on-download" / "config.json").read_text())["data"]
    assert data["dir"] == str(downloaded.resolve()) and data["generated"] is False


@pytest.fixture
def served(tmp_path):
    """An HTTP server on the loopback address serving the folder it returns, at the URL it returns."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/data"
    finally:
        server.shutdown()
        server.server_close()


def test_download_ptb_fetches_the_three_files_and_checks_them(cli, served, tmp_path, monkeypatch):
    """Mikolov's files when ../shared/data/ptb has them, checked against tasks/ptb.sha256 as
    shipped; else generated files, with checksums of their own."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    folder, url = served
    (folder / "data").mkdir()
    if PTB.is_dir():
        for name in FILES:
            shutil.copy(PTB / name, folder / "data" / name)
    else:
        ptb_generator.write_corpus(folder / "data", 300, 40, [1, 2], seed=0)
        sums = tmp_path / "ptb.sha256"
        sums.write_text("".join(f"{hashlib.sha256((folder / 'data' / n).read_bytes()).hexdigest()}  {n}\n"
                                for n in FILES))
        monkeypatch.setattr(PennTreebank, "CHECKSUMS", sums)
    result = cli("data", "download", "ptb", "--url", url, "--dest", tmp_path / "ptb")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "ptb")
    assert sorted(p.name for p in (tmp_path / "ptb").iterdir()) == sorted(FILES)  # no temporary left behind
    assert all((tmp_path / "ptb" / n).read_bytes() == (folder / "data" / n).read_bytes() for n in FILES)

    # A served file that is not the expected one is refused, and nothing is written.
    with open(folder / "data" / "ptb.valid.txt", "a") as f:
        f.write(" one more line \n")
    assert_one_line_error(cli("data", "download", "ptb", "--url", url, "--dest", tmp_path / "bad"),
                          "checksum mismatch for ptb.valid.txt", f"{url}/ptb.valid.txt")
    assert list((tmp_path / "bad").iterdir()) == []
    # An address that fails: the hint is the simulator's stand-in (`data download` has no --data-dir).
    failed = cli("data", "download", "ptb", "--url", url + "/nowhere", "--dest", tmp_path / "bad")
    assert_one_line_error(failed, "nowhere/ptb.train.txt: download failed", "offline, `memn2n data generate ptb` writes a stand-in")
    assert "--data-dir" not in failed.stderr
    # Never into the generated stand-in's folder.
    ptb_generator.write_corpus(tmp_path / "gen", 10, 2, [1], seed=0)
    assert_one_line_error(cli("data", "download", "ptb", "--url", url, "--dest", tmp_path / "gen"),
                          "holds a generated stand-in")


def test_the_shipped_ptb_checksums_are_those_of_mikolovs_files(ptb_dir):
    from memn2n_cli.download import read_checksums, sha256_file

    assert read_checksums(PennTreebank.CHECKSUMS) == {name: sha256_file(ptb_dir / name) for name in FILES}
    assert PennTreebank.DOWNLOAD_URL.startswith("https://")
