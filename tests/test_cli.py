"""The command line on real data, and every kind of bad input: one stderr line, exit code 2."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile

import pytest
import torch

from memn2n_cli.checkpoint import check_manifest, load_model
from memn2n_cli.history import read_history
from tasks import get_task
from tests.conftest import ROOT, assert_one_line_error, die_after_saves

FAST = ["--epochs", "3", "--ls-epochs", "2"]
OLD_LM = ROOT / "tests" / "data" / "runs-before-24" / "ptb-small"  # a language-model run


def test_train_writes_a_complete_run_and_reports_json(trained_run):
    out, summary = trained_run
    files = {p.name for p in out.iterdir() if not p.name.startswith("events.out.tfevents.")}  # TensorBoard's, where installed
    assert files == {"model.safetensors", "config.json", "vocab.json", "metrics.json", "manifest.json", "history.jsonl", "README.md"}
    manifest = json.loads((out / "manifest.json").read_text())["sha256"]
    assert manifest.keys() == {"model.safetensors", "config.json", "vocab.json", "metrics.json", "history.jsonl", "README.md"}
    assert all(hashlib.sha256((out / name).read_bytes()).hexdigest() == digest for name, digest in manifest.items())
    (row,) = summary["tasks"]
    assert set(row) == {"task", "train_error", "valid_error", "test_error"} and row["task"] == 1
    assert summary["mean_test_error"] == row["test_error"] and summary["run"] == str(out)
    assert row["test_error"] < 60  # 15 epochs is far from converged, but well above chance (6 places)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["dim"] == 20 and config["training"]["lr"] == 0.01 and config["training"]["batch_size"] == 32
    assert sorted(config["data"]["files"]) == ["qa1_single-supporting-fact_test.txt", "qa1_single-supporting-fact_train.txt"]


def test_eval_recomputes_the_same_figures(cli, trained_run, en_dir):
    out, summary = trained_run
    for split in ("test", "valid", "train"):
        result = cli("eval", out, "--split", split, "--json")
        assert result.exit_code == 0, result.stderr
        evaluated = json.loads(result.stdout)
        assert evaluated["tasks"][0][f"{split}_error"] == pytest.approx(summary["tasks"][0][f"{split}_error"])
    table = cli("eval", out)
    assert table.exit_code == 0 and "Mean" in table.stdout and "Test" in table.stdout


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, en_dir):
    """A model trained in memory, written as a run directory and loaded back: the same config,
    vocabulary and weights, so the same logits on every test question, bit for bit."""
    from memn2n_cli.qa.batches import make_batch
    from memn2n_cli.checkpoint import write_run
    from memn2n_cli.configs import ModelOptions, TrainConfig
    from memn2n_cli.qa.restarts import fit_restarts
    from memn2n_cli.qa.runs import build_model, prepare, trained_files

    config = TrainConfig(epochs=2, ls_epochs=1)
    prepared = prepare("babi", [2], en_dir, ModelOptions(), config, torch.device("cpu"))
    trained = build_model(prepared, 0, torch.device("cpu"))
    fit_restarts([trained], prepared.encoded["train"], prepared.encoded["valid"], config, [0])
    write_run(tmp_path / "run", trained_files(trained, prepared, config, {})[1])
    loaded, saved, vocab = load_model(tmp_path / "run")
    assert saved["tasks"] == [2] and vocab.words == prepared.vocab.words and loaded.config == trained.config
    test = prepared.encoded["test"]
    batch = make_batch(test, torch.arange(len(test)))
    assert torch.equal(loaded(**batch).logits, trained.eval()(**batch).logits)


def test_train_all_tasks_independently_writes_one_model_per_task(cli, tmp_path, en_dir):
    out = tmp_path / "two"
    result = cli("train", "babi", "--task", "1", "--task", "4", "--data-dir", en_dir, "--out", out, *FAST)
    assert result.exit_code == 0, result.stderr
    assert (out / "qa1" / "model.safetensors").exists() and (out / "qa4" / "config.json").exists()
    assert [r["task"] for r in json.loads((out / "metrics.json").read_text())["tasks"]] == [1, 4]
    assert "Failed" in result.stdout and "saved" in result.stderr
    evaluated = cli("eval", out, "--json")
    assert [r["task"] for r in json.loads(evaluated.stdout)["tasks"]] == [1, 4]


def test_joint_training_reports_every_task(cli, tmp_path, en_dir):
    out = tmp_path / "joint"
    result = cli("train", "babi", "--task", "1", "--task", "2", "--joint", "--data-dir", en_dir, "--out", out,
                 "--json", "--epochs", "1", "--ls-epochs", "1")
    assert result.exit_code == 0, result.stderr
    assert [r["task"] for r in json.loads(result.stdout)["tasks"]] == [1, 2]
    assert json.loads((out / "config.json").read_text())["model"]["dim"] == 50


def test_tasks_lists_the_registry(cli):
    """Every registered task, on a line of its own with its kind and summary (one row each)."""
    from tasks import available_tasks

    result = cli("tasks")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│ ") and line.split()[1] != "│"}
    assert set(rows) == set(available_tasks())
    for name, cls in available_tasks().items():
        assert cls.summary[:30] in rows[name] and f" {cls.kind} " in rows[name], rows[name]


def test_data_dir_from_environment(cli, tmp_path, en_dir, monkeypatch):
    monkeypatch.setenv("MEMN2N_DATA_DIR", str(en_dir))
    result = cli("train", "babi", "--task", "1", "--out", tmp_path / "r", *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["dir"] == str(en_dir.resolve())


# Bad input ------------------------------------------------------------------------------------

def test_every_command_that_computes_lists_the_devices_it_takes_in_its_help(cli):
    """--device's help names every device the check of the test below accepts, mps included."""
    for command in ("train", "eval", "predict", "visualize", "sweep", "serve"):
        result = cli(command, "--help")
        assert result.exit_code == 0, result.stderr
        assert "auto, cpu, cuda, cuda:N or mps" in " ".join(result.stdout.replace("│", " ").split()), command


@pytest.mark.parametrize("device, fragment", [
    ("tpu", "--device is auto, cpu, cuda, cuda:N or mps, not 'tpu'"),
    ("", "--device is auto, cpu, cuda, cuda:N or mps, not ''"),
    ("cuda", "--device cuda: PyTorch finds no CUDA device here"),  # a CPU-only build
    ("cuda:7", "--device cuda:7: PyTorch finds no CUDA device here"),
    ("mps", "--device mps: Apple's Metal (mps) is not available here"),
])
def test_every_command_that_computes_refuses_a_device_it_cannot_use(cli, trained_run, tmp_path, en_dir, device,
                                                                    fragment):
    """One rule (devices.resolve_device), reached from each command before any training; the
    library's functions by it too, naming ``device=``."""
    import memn2n

    run = trained_run[0]
    (tmp_path / "story.txt").write_text("Mary went home.\nWhere is Mary?\n")
    for args in (["train", "babi", "--task", "1", "--data-dir", en_dir, "--out", tmp_path / "t"],
                 ["eval", run], ["predict", tmp_path / "story.txt", "-c", run], ["visualize", "-c", run, "--hops"],
                 ["sweep", "babi", "--task", "1", "--data-dir", en_dir, "--out", tmp_path / "s"],
                 ["serve", "-c", run, "--port", "0"]):
        assert_one_line_error(cli(*args, "--device", device), fragment)
    assert not (tmp_path / "t").exists() and not (tmp_path / "s" / "trials").exists()  # nothing was trained
    python = fragment.replace("--device", "device=")
    for call in (lambda: memn2n.train("babi", tmp_path / "u", data_dir=en_dir, device=device),
                 lambda: memn2n.evaluate(run, device=device),
                 lambda: memn2n.answer(run, "Mary went home.\nWhere is Mary?", device=device)):
        with pytest.raises(memn2n.UserError, match=re.escape(python)):
            call()


def _write_task(folder, train: bytes, test: bytes = b"1 Mary went home.\n2 Where is Mary?\thome\t1\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa1_custom_train.txt").write_bytes(train)
    (folder / "qa1_custom_test.txt").write_bytes(test)
    return folder


@pytest.mark.parametrize("args, fragments", [
    (["train", "babi", "--task", "21"], ["unknown bAbI task '21'"]),
    (["train", "nope"], ["unknown task 'nope'", "babi"]),
    (["train", "babi", "--task", "1", "--joint"], ["--joint needs at least two tasks"]),
    (["train", "babi", "--no-temporal"], ["--random-noise"]),
    (["train", "babi", "--encoding", "cnn"], ["--encoding is pe or bow"]),
    (["train", "babi", "--tying", "none"], ["--tying is adjacent or layerwise"]),
    (["train", "babi", "--validation-fraction", "0", "--ls-patience", "1"], ["--ls-patience"]),
    (["eval", "/no/such/run"], ["/no/such/run", "run directory not found"]),
    (["eval", ".", "--split", "dev"], ["--split"]),
    (["data", "download", "text9"], ["unknown task 'text9'"]),
    (["data", "download", "jsonl"], ["no download for 'jsonl'; available: babi, ptb, text8"]),
    (["train", "babi", "--dim", "0"], ["--dim must be at least 1, not 0"]),
    (["train", "babi", "--lr", "-1"], ["--lr must be at least 0, not -1.0"]),
    (["train", "babi", "--max-grad-norm", "0"], ["--max-grad-norm must be more than 0, not 0.0"]),
    (["train", "ptb", "--max-grad-norm", "0"], ["--max-grad-norm must be more than 0, not 0.0"]),
    (["train", "babi", "--seed", "1180591620717411303424"], ["--seed must be at most 18,446,744,073,709,551,615"]),
    (["train", "babi", "--linear-dim", "5"], ["--linear-dim is an option of a language model"]),
    (["train", "ptb", "--encoding", "bow"], ["--encoding is an option of question answering"]),
    (["predict", "-", "-c", "bundled", "--next", "3"], ["--next is an option of a language model"]),
    (["predict", "-", "-c", OLD_LM, "--top-k", "5"], ["--top-k is an option of question answering"]),
    (["predict", "-", "-c", OLD_LM, "--next", "0"], ["--next must be a whole number of at least 1, not 0"]),
    (["sweep", "babi", "--grid", "hops=1,2", "--hops", "3"], ["--hops is given both as an option and in the grid"]),
    (["sweep", "ptb", "--grid", "hops=1,2", "--hops", "3"], ["--hops is given both as an option and in the grid"]),
    (["train", "ptb", "--task", "2"], ["--task and --joint are options of question answering"]),
    (["train", "ptb", "--dim", "8", "--linear-dim", "9"], ["--linear-dim 9 is more than --dim 8"]),
])
def test_bad_options(cli, args, fragments):
    assert_one_line_error(cli(*args), *fragments)


def test_missing_data_directory(cli, tmp_path):
    assert_one_line_error(cli("train", "babi", "--data-dir", tmp_path / "none"), "data directory not found")
    (tmp_path / "story.txt").write_text("Mary went home.\nWhere is Mary?\n")
    assert_one_line_error(cli("train", "babi", "--data-dir", tmp_path / "story.txt"), "is a file, not a data directory")


def test_data_directory_without_the_task(cli, tmp_path):
    assert_one_line_error(cli("train", "babi", "--task", "2", "--data-dir", tmp_path), "no file for task 2")


def test_every_tasks_data_is_checked_before_any_model_trains(cli, tmp_path):
    """One model per task, or a sweep, on a folder that holds task 1 only: the missing task 2 is the
    error before task 1 trains, and nothing is written."""
    from tasks import get_task

    (tmp_path / "data").mkdir()
    get_task("babi").generate(tmp_path / "data", ["1"], 60, 20, 0)
    for command in (["train", "babi", "--task", "1", "--task", "2", "--out", tmp_path / "run"],
                    ["sweep", "babi", "--task", "1", "--task", "2", "--restarts", "1", "--out", tmp_path / "sweep"]):
        assert_one_line_error(cli(*command, "--data-dir", tmp_path / "data", "--epochs", "1", "--ls-epochs", "1"),
                              "no file for task 2, split 'train'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("train, fragments", [
    (b"", ["qa1_custom_train.txt", "empty file"]),
    (b"1 Mary went home.\n2 Where is Mary?\thome\t1\nbroken line\n", ["qa1_custom_train.txt:3:", "expected"]),
    (b"1 Mary went home.\n2 Wh\xe9re is Mary?\thome\t1\n", ["qa1_custom_train.txt:2:", "not UTF-8"]),
])
def test_malformed_data(cli, tmp_path, train, fragments):
    folder = _write_task(tmp_path / "data", train)
    assert_one_line_error(cli("train", "babi", "--data-dir", folder, "--out", tmp_path / "r"), *fragments)


def test_out_directory_in_use(cli, tmp_path, en_dir):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    assert_one_line_error(cli("train", "babi", "--data-dir", en_dir, "--out", tmp_path / "used"), "already holds files")


def test_no_data_and_no_network(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MEMN2N_BABI_URL", (tmp_path / "absent.tar.gz").as_uri())
    assert_one_line_error(cli("train", "babi", "--out", tmp_path / "r"), "download failed", "pass --data-dir with",
                          "MEMN2N_DATA_DIR", "`memn2n data generate babi` writes the 20 tasks")


def test_generated_tasks_are_found_by_every_later_command_and_said_to_be_generated(cli, tmp_path, monkeypatch):
    """`memn2n data generate babi` with no --out writes into a folder of its own in the cache, apart
    from the upstream download's (which the tests take for the upstream files); a command given no
    data then uses it, saying so in one line, and a task it lacks is named with how to add it."""
    from tasks.babi import default_data_dir, generated_data_dir
    from tests.conftest import _upstream_en

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MEMN2N_BABI_URL", (tmp_path / "absent.tar.gz").as_uri())
    monkeypatch.chdir(tmp_path)
    made = cli("data", "generate", "babi", "--task", "1", "--train", "60", "--test", "20")
    assert made.exit_code == 0, made.stderr
    generated = tmp_path / "cache" / "memn2n" / "babi" / "generated" / "en"
    assert made.stdout.strip() == str(generated) == str(generated_data_dir())
    assert sorted(p.name for p in generated.iterdir()) == ["qa1_single-supporting-fact_test.txt", "qa1_single-supporting-fact_train.txt"]
    assert not generated.is_relative_to(default_data_dir()) and _upstream_en() != generated
    trained = cli("train", "babi", "--task", "1", "--out", "r", "--epochs", "1", "--ls-epochs", "1")
    assert trained.exit_code == 0, trained.stderr
    assert trained.stderr.splitlines()[0] == (f"warning: using the bAbI tasks memn2n generated in {generated}, not the upstream "
                                              "files (`memn2n data download babi` fetches those, which are then used)")
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["dir"] == str(generated)
    lacking = cli("train", "babi", "--task", "2", "--out", "r2")
    assert lacking.exit_code == 2 and lacking.stderr.splitlines()[1:] == [
        f"error: {generated}: no file for task 2, split 'train' (expected qa2_*_train.txt); "
        "`memn2n data generate babi --task 2` adds it"], lacking.stderr


def test_an_offline_make_demo_says_first_which_data_it_used_and_shows_no_error(tmp_path):
    """`make demo` offline: its first line says it generated task 1 (no `error:` line from the
    failed download), into the folder later commands find with no flag. The demo's own training is
    cut to one epoch by a stand-in for .venv/bin/memn2n."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    if shutil.which("make") is None:
        pytest.skip("needs make")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()  # newer than pyproject.toml: no set-up
    memn2n = venv / "bin" / "memn2n"
    memn2n.write_text(f'#!/bin/sh\n[ "$1" = train ] && set -- "$@" --epochs 1 --ls-epochs 1\n'
                      f'exec {sys.executable} -m memn2n_cli "$@"\n')
    memn2n.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "MEMN2N_BABI_URL": (tmp_path / "absent.tar.gz").as_uri(), "COLUMNS": "120", "TERM": "dumb"}
    env.pop("MEMN2N_DATA_DIR", None)
    done = subprocess.run(["make", "demo", f"VENV={venv}", f"SHARED_BABI={tmp_path / 'no-shared-copy'}"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    generated = tmp_path / "cache" / "memn2n" / "babi" / "generated" / "en"
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"data: bAbI tasks 1-20 generated by memn2n's simulator (no download: offline?) into {generated}")
    assert not [line for line in lines if line.startswith("error:")], done.stderr
    assert len(list(generated.glob("qa*_train.txt"))) == 20  # the README's next commands train other tasks too
    assert list((tmp_path / "checkpoints").glob("demo-task1-*/config.json"))


def _copy_run(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("damage, fragments", [
    (lambda run: ((run / "manifest.json").unlink(),  # a run from before manifests: the loader's own check
                  (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:100])),
     ["model.safetensors", "corrupt weights file"]),
    (lambda run: (run / "config.json").write_text("{not json"), ["config.json", "corrupt JSON"]),
    (lambda run: _edit_config(run, lambda c: c["model"].update(dim=30)), ["weights do not match"]),
    (lambda run: (run / "model.safetensors").write_bytes(_flip_a_byte((run / "model.safetensors").read_bytes())),
     ["model.safetensors is not the file manifest.json names: damaged, or a save was interrupted"]),
    (lambda run: (run / "vocab.json").unlink(), ["vocab.json is missing: the run is incomplete"]),
    (lambda run: (run / "config.json").write_text('{"format": "other"}'), ["not a memn2n run"]),
    (lambda run: _edit_config(run, lambda c: c["training"].update(momentum=0.9)),
     ["config.json: unknown training setting 'momentum' (written by another version of memn2n?)"]),
    (lambda run: _edit_config(run, lambda c: c["model"].pop("vocab_size")), ["config.json: model setting 'vocab_size' is missing"]),
    (lambda run: _edit_config(run, lambda c: c["model"].update(hops=0)), ["config.json: model settings: hops must be at least 1"]),
    (lambda run: _edit_config(run, lambda c: c["model"].update(vocab_size=10**12)),
     ["model settings: vocab_size must be at most 10,000,000"]),  # not an allocation of terabytes
    (lambda run: ((run / "config.json").unlink(), (run / "config.json").mkdir()), ["config.json: cannot read"]),
    (lambda run: (_nan_weights(run), (run / "manifest.json").unlink()), ["weights hold NaN or infinity (embedding)"]),
    (lambda run: (_int64_weights(run), (run / "manifest.json").unlink()), ["weights are not float32: embedding (I64)"]),
    (lambda run: _edit_config(run, lambda c: c.pop("tasks")), ["no 'tasks' list in config.json"]),
    (lambda run: _edit_config(run, lambda c: c.update(data={"dir": 7})), ["'data' name the data's folder"]),
    (lambda run: _edit_config(run, lambda c: c["model"].update(answer_word_ids=[1, 10**6])),
     ["model settings: answer_word_ids must be word ids from 1 to"]),
    (lambda run: _edit_config(run, lambda c: c.update(task="ptb")), ["unknown model setting 'answer_word_ids'"]),
])
def test_corrupt_or_mismatched_runs(cli, trained_run, tmp_path, damage, fragments):
    run = _copy_run(trained_run[0], tmp_path / "copy")
    damage(run)
    assert_one_line_error(cli("eval", run), *fragments)


def _edit_config(run, edit) -> None:
    """Edit config.json by hand, as a run written by another version (with no manifest) would read."""
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    (run / "manifest.json").unlink()


def _nan_weights(run) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(run / "model.safetensors")
    weights["embedding"][0, 3, 1] = float("nan")
    save_file(weights, run / "model.safetensors", metadata={"format": "memn2n-run/1"})


def _int64_weights(run) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(run / "model.safetensors")
    weights["embedding"] = weights["embedding"].long()
    save_file(weights, run / "model.safetensors", metadata={"format": "memn2n-run/1"})


def _flip_a_byte(content: bytes) -> bytes:
    middle = len(content) // 2
    return content[:middle] + bytes([content[middle] ^ 1]) + content[middle + 1:]


def test_a_run_written_before_a_setting_existed_loads_with_its_default(cli, trained_run, tmp_path):
    """A setting added since a run was written takes its default: the same figures as before."""
    run = _copy_run(trained_run[0], tmp_path / "older")
    _edit_config(run, lambda c: (c["model"].pop("empty_memories"), c["training"].pop("ls_patience")))
    older, current = (cli("eval", r, "--json") for r in (run, trained_run[0]))
    assert older.exit_code == 0, older.stderr
    assert json.loads(older.stdout)["tasks"] == json.loads(current.stdout)["tasks"]


def test_download_verifies_and_unpacks(cli, tmp_path, upstream_en_dir, monkeypatch):
    from tasks import babi

    archive = tmp_path / "babi.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for task in (1, 2):
            for split in ("train", "test"):
                path = babi.task_file(upstream_en_dir, task, split)
                tar.add(path, arcname=f"{babi.ARCHIVE_ROOT}/en/{path.name}")
    sums = tmp_path / "sums"
    sums.write_text("".join(line + "\n" for line in babi.CHECKSUMS.read_text().splitlines()
                            if line.split()[1].startswith(("en/qa1_", "en/qa2_"))))
    monkeypatch.setattr(babi, "CHECKSUMS", sums)
    result = cli("data", "download", "babi", "--url", archive.as_uri(), "--dest", tmp_path / "cache")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "cache" / babi.ARCHIVE_ROOT / "en")
    assert len(list((tmp_path / "cache" / babi.ARCHIVE_ROOT / "en").iterdir())) == 4

    sums.write_text(sums.read_text().replace(sums.read_text()[:8], "00000000", 1))
    assert_one_line_error(cli("data", "download", "babi", "--url", archive.as_uri(), "--dest", tmp_path / "c2"),
                          "checksum mismatch")


def test_a_download_that_is_no_archive_is_one_line(cli, tmp_path):
    """tarfile tries every compression it knows and lists each failure on a line of its own."""
    (tmp_path / "x.txt").write_text("not an archive\n")
    assert_one_line_error(cli("data", "download", "babi", "--url", (tmp_path / "x.txt").as_uri(), "--dest", tmp_path / "c"),
                          "x.txt: not a readable .tar.gz archive: not a gzip file")


def test_text8_download_checks_size_and_checksum(cli, tmp_path, monkeypatch):
    import hashlib
    import zipfile

    from tasks.lm import Text8

    text = b" anarchism originated as a term of abuse" * 100
    archive = tmp_path / "text8.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("text8", text)
    monkeypatch.setattr(Text8, "FILE_BYTES", len(text))
    monkeypatch.setattr(Text8, "FILE_SHA256", hashlib.sha256(text).hexdigest())
    result = cli("data", "download", "text8", "--url", archive.as_uri(), "--dest", tmp_path / "t8")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "t8") and (tmp_path / "t8" / "text8").read_bytes() == text
    assert [p.name for p in (tmp_path / "t8").iterdir()] == ["text8"]  # no temporary left behind

    monkeypatch.setattr(Text8, "FILE_SHA256", "0" * 64)
    assert_one_line_error(cli("data", "download", "text8", "--url", archive.as_uri(), "--dest", tmp_path / "bad"),
                          "text8 is not the expected file")
    assert not (tmp_path / "bad" / "text8").exists()
    assert_one_line_error(cli("data", "download", "text8", "--url", (tmp_path / "t8" / "text8").as_uri(),
                              "--dest", tmp_path / "bad"), "not a zip archive")


def test_resume_keeps_finished_models_and_trains_the_rest(cli, tmp_path, en_dir):
    out = tmp_path / "resumed"
    first = cli("train", "babi", "--task", "1", "--task", "4", "--data-dir", en_dir, "--out", out, *FAST)
    assert first.exit_code == 0, first.stderr
    kept = (out / "qa1" / "model.safetensors").read_bytes()
    for f in (out / "qa4").iterdir():  # as if the run had been interrupted during task 4
        f.unlink()
    again = cli("train", "babi", "--task", "1", "--task", "4", "--data-dir", en_dir, "--resume", out, *FAST, "--json")
    assert again.exit_code == 0, again.stderr
    assert "qa1: already trained, kept" in again.stderr and (out / "qa4" / "config.json").exists()
    assert (out / "qa1" / "model.safetensors").read_bytes() == kept
    assert [r["task"] for r in json.loads(again.stdout)["tasks"]] == [1, 4]
    other = cli("train", "babi", "--task", "1", "--task", "4", "--data-dir", en_dir, "--resume", out, *FAST, "--hops", "2")
    assert_one_line_error(other, "trained with other options")
    # A memory shorter than the model's is another model; a longer one than any training story is the same.
    resume = ["train", "babi", "--task", "1", "--task", "4", "--data-dir", en_dir, "--resume", out, *FAST]
    assert_one_line_error(cli(*resume, "--memory-size", "3"), "qa1: holds a model trained with other options")
    longer = cli(*resume, "--memory-size", "500")
    assert longer.exit_code == 0 and "qa1: already trained, kept" in longer.stderr, longer.stderr
    files = {f: f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}
    for tasks, fragment in ((["1"], "holds one model per task (qa1, qa4)"), (["1", "2"], "holds models of qa4 not asked for")):
        args = [a for t in tasks for a in ("--task", t)]
        assert_one_line_error(cli("train", "babi", *args, "--data-dir", en_dir, "--resume", out, *FAST), fragment)
    assert_one_line_error(cli("train", "babi", "--task", "2", "--data-dir", en_dir, "--resume", out / "qa1", *FAST),
                          "holds a model of babi task(s) [1], not of babi [2]")
    (out / "qa4" / "config.json").rename(out / "qa4" / "progress.safetensors")  # as if task 4 were still training
    assert_one_line_error(cli("train", "babi", "--task", "1", "--task", "2", "--data-dir", en_dir, "--resume", out, *FAST),
                          "holds models of qa4 not asked for")  # not left orphaned behind a finished run
    (out / "qa4" / "progress.safetensors").rename(out / "qa4" / "config.json")
    edited = tmp_path / "edited"  # a finished model is kept only on the data it was trained on
    edited.mkdir()
    for path in get_task("babi").data_files(en_dir, [1, 4]):
        (edited / path.name).write_bytes(path.read_bytes() + b"\n")
    assert_one_line_error(cli("train", "babi", "--task", "1", "--task", "4", "--data-dir", edited, "--resume", out, *FAST),
                          f"{out / 'qa1'}: was trained on other data files than {edited.resolve()}'s")
    assert {f: f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()} == files  # nothing touched


def test_no_validation_set_trains_and_eval_says_there_is_none(cli, tmp_path, en_dir):
    out = tmp_path / "no-valid"
    trained = cli("train", "babi", "--data-dir", en_dir, "--out", out, "--validation-fraction", "0", *FAST, "--json")
    assert trained.exit_code == 0, trained.stderr
    assert set(json.loads(trained.stdout)["tasks"][0]) == {"task", "train_error", "test_error"}
    assert_one_line_error(cli("eval", out, "--split", "valid"), "holds no valid questions")


def test_version(cli):
    from memn2n_cli import __version__

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout == f"memn2n {__version__}\n"


def test_a_run_killed_after_an_epoch_resumes_to_the_same_model(cli, tmp_path, en_dir, monkeypatch):
    """Its progress is saved after every epoch: killed after the third (of two linear-start and six
    main epochs) and resumed, it ends with the weights and history, bit for bit, of a run never
    interrupted; the progress file is gone once the model is complete."""
    import memn2n_cli.qa.runs as runs

    args = ["train", "babi", "--task", "2", "--data-dir", en_dir, "--epochs", "6", "--ls-epochs", "2", "--json"]
    whole = cli(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.stderr
    die_after_saves(monkeypatch, runs, "write_progress", 3)
    assert isinstance(cli(*args, "--out", tmp_path / "parts").exception, SystemError)
    monkeypatch.undo()
    parts = tmp_path / "parts"
    assert {p.name for p in parts.iterdir() if not p.name.startswith("events.out")} == {"progress.safetensors", "history.jsonl"}
    # The metrics file was written as it trained: three epochs. A fourth epoch's line, written just
    # before a kill that came before its progress was saved, is dropped when the run resumes.
    assert [line["epoch"] for line in read_history(parts)] == [1, 2, 3]
    with open(parts / "history.jsonl", "a") as f:
        f.write(json.dumps({**read_history(parts)[-1], "epoch": 4}) + "\n")
    assert_one_line_error(cli(*args, "--resume", parts, "--hops", "2"), "with other options or tasks")
    other = tmp_path / "other-data"  # the same questions, other bytes: a run goes on on the files it started on
    other.mkdir()
    for path in get_task("babi").data_files(en_dir, [2]):
        (other / path.name).write_bytes(path.read_bytes() + b"\n")
    assert_one_line_error(cli(*[a if a != en_dir else other for a in args], "--resume", parts),
                          f"{parts}: was trained on other data files than {other.resolve()}'s: resume it with "
                          f"--data-dir {en_dir.resolve()}")
    resumed = cli(*args, "--resume", parts)
    assert resumed.exit_code == 0 and "resuming after epoch 3" in resumed.stderr
    assert json.loads(resumed.stdout)["tasks"] == json.loads(whole.stdout)["tasks"]
    assert (parts / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
    history = [json.loads((tmp_path / d / "metrics.json").read_text())["history"] for d in ("whole", "parts")]
    assert history[0] == history[1] and len(history[0]) == 8
    assert not (parts / "progress.safetensors").exists()
    # Each epoch once, the figures of the run's own history, time counted on from the first sitting.
    lines = read_history(parts)
    assert [{k: v for k, v in line.items() if k != "seconds"} for line in lines] == history[0]
    assert all(a["seconds"] < b["seconds"] for a, b in zip(lines, lines[1:]))
    assert json.loads((parts / "metrics.json").read_text())["train_seconds"] >= lines[-1]["seconds"]  # both sittings
    # The schedule's rates (0.005, 0.01, ...), not their float32 copies (0.004999999888241291).
    assert all(line["lr"] == float(f"{line['lr']:.8g}") for line in lines), [line["lr"] for line in lines]
    check_manifest(parts)  # the finished run's manifest covers the file
    assert "history.jsonl" in json.loads((parts / "manifest.json").read_text())["sha256"]


def test_resume_needs_a_run_directory(cli, tmp_path):
    assert_one_line_error(cli("train", "babi", "--resume", tmp_path / "none"), "run directory not found")
    assert_one_line_error(cli("train", "babi", "--resume", tmp_path, "--out", tmp_path / "x"), "leave out --out")


def test_help_shows_what_each_option_says_defaults_included(cli):
    """Every command's --help shows each option's help text whole (Markdown's code marks aside):
    read as rich markup, "[default: 10]" was taken for a style and dropped (the defaults of train,
    predict, data, sweep); read as Markdown, "<task>" would be taken for an HTML tag."""
    import re

    import typer.main

    from memn2n_cli.cli import app

    def commands(group, path=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, (*path, name))
            else:
                yield (*path, name), command

    defaults = flags = 0
    for path, command in commands(typer.main.get_command(app)):
        result = cli(*path, "--help")
        assert result.exit_code == 0, result.output
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
        for param in command.params:
            said = " ".join((getattr(param, "help", None) or "").replace("`", "").split())
            assert said in shown, (path, param.name, said)
            defaults += said.count("[default:")
        assert "<bool>" not in shown, path  # a flag takes no value: no placeholder beside it
        flags += "--json" in shown
    assert defaults > 30 and flags >= 4


def test_piped_figure_2_keeps_each_storys_file_and_line_whole(cli, trained_run, tmp_path):
    """Piped (no terminal, 120 columns in these tests), a story's "FILE:LINE" is one line however long."""
    story = tmp_path / ("a-folder-with-a-long-name-" * 5) / "story.txt"
    story.parent.mkdir()
    story.write_text("Mary moved to the bathroom.\nJohn went to the hallway.\nWhere is Mary?\n")
    result = cli("visualize", "--hops", story, "-c", trained_run[0])
    assert result.exit_code == 0, result.stderr
    assert f"{story}:3" in result.stdout.splitlines(), result.stdout[:500]


def test_sweep_has_a_default_folder(cli, tmp_path, en_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("sweep", "babi", "--task", "1", "--restarts", "1", "--epochs", "1", "--ls-epochs", "1",
                 "--data-dir", en_dir, "--workers", "1")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "sweeps" / "babi" / "results.json").is_file() and "results in sweeps/babi/" in result.stderr


def test_an_output_folder_that_cannot_be_written_is_one_line_naming_it(cli, tmp_path, en_dir):
    """An OSError on a path the user gave (a file as --out, a folder inside a file) is bad input."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    for out in (a_file, a_file / "run"):
        result = cli("train", "babi", "--data-dir", en_dir, "--epochs", "1", "--ls-epochs", "1", "--out", out)
        assert_one_line_error(result, f"error: {out}", "Not a directory")
    assert a_file.read_text() == "mine\n"


def test_a_command_runs_outside_the_main_thread():
    """A command invoked from another thread (an app embedding memn2n, a threaded runner) runs:
    only the main thread takes SIGTERM's handler (signal.signal raises ValueError elsewhere)."""
    import threading

    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    results = []
    thread = threading.Thread(target=lambda: results.append(CliRunner().invoke(app, ["tasks"])))
    thread.start()
    thread.join(60)
    assert results[0].exception is None and results[0].exit_code == 0
    assert "babi" in results[0].stdout
