"""Language modelling (Section 5): corpora, the model by hand, the recipe, exact resume."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from memn2n_cli.configs import LMConfig, LMTrainConfig
from memn2n_cli.lm.training import contexts, continue_text, evaluate_lm, next_lr
from memn2n_cli.model import MemN2NLM
from tasks import get_task
from tasks.lm import EOS, UNK
from memn2n_cli.checkpoint import check_manifest
from memn2n_cli.history import read_history
from tests.conftest import ROOT, assert_one_line_error, die_after_saves, published
from tests.test_model_card import front_matter


@pytest.fixture(scope="module")
def ptb(ptb_dir):
    return get_task("ptb").load(ptb_dir)


def test_ptb_counts_match_the_manifest(ptb, ptb_dir):
    assert len(ptb.words) == 10_000 and EOS in ptb.words and UNK in ptb.words
    assert {k: len(v) for k, v in ptb.ids.items()} == {"train": 929_589, "valid": 73_760, "test": 82_430}
    first = (ptb_dir / "ptb.valid.txt").read_text().splitlines()[0].split()
    assert [ptb.words[i] for i in ptb.ids["valid"][: len(first) + 1]] == first + [EOS]


def test_text8_reader_splits_by_characters_and_maps_rare_words_to_unk(tmp_path, monkeypatch):
    from tasks.lm import Text8

    words = ["rare"] + ["the", "cat", "sat", "on", "mat"] * 40  # "rare" once, in the training part
    (tmp_path / "text8").write_text(" " + " ".join(words))
    monkeypatch.setattr(Text8, "SPLIT_CHARS", (400, 100, 100))
    corpus = Text8().load(tmp_path)
    assert sorted(corpus.words) == sorted(["the", "cat", "sat", "on", "mat", UNK])  # "rare" seen once
    text = " " + " ".join(words)
    cut = text.find(" ", 400)
    assert len(corpus.ids["train"]) == len(text[:cut].split())
    restored = [corpus.words[i] for i in torch.cat([corpus.ids[s] for s in ("train", "valid", "test")])]
    assert restored == [w if w != "rare" else UNK for w in words]


def test_contexts_put_the_current_word_first():
    ids = torch.arange(100, 110)
    assert contexts(ids, torch.tensor([5, 9]), 3).tolist() == [[105, 104, 103], [109, 108, 107]]


def test_language_model_by_hand():
    torch.manual_seed(0)
    model = MemN2NLM(LMConfig(vocab_size=7, dim=4, hops=2, memory_size=3, linear_dim=2))
    context = torch.tensor([[3, 1, 6]])
    A, C, H, W = model.A.weight.detach(), model.C.weight.detach(), model.H.weight.detach(), model.W.weight.detach()
    m = A[[3, 1, 6]] + model.T_A.detach()  # m_i = A x_i + T_A(i)
    c = C[[3, 1, 6]] + model.T_C.detach()
    u = torch.full((4,), 0.1)  # the constant query
    for _ in range(2):
        u = H @ u + torch.softmax(m @ u, 0) @ c  # layer-wise: u^{k+1} = H u^k + o^k
        u = torch.cat([u[:2], torch.relu(u[2:])])  # ReLU on the units past linear_dim
    out = model(context, torch.tensor([5]))
    assert torch.allclose(out.logits[0], W @ u, atol=1e-6)
    assert out.loss.item() == pytest.approx(-torch.log_softmax(W @ u, 0)[5].item(), rel=1e-5)


def test_perplexity_from_summed_counts_and_evaluation_positions():
    metrics = get_task("ptb").metrics({"nll": 2 * math.log(50.0) + math.log(200.0), "tokens": 3})
    assert metrics["perplexity"] == pytest.approx((50 * 50 * 200) ** (1 / 3))
    model = MemN2NLM(LMConfig(vocab_size=7, dim=4, hops=1, memory_size=3, linear_dim=2))
    counts = evaluate_lm(model, torch.tensor([1, 2, 3, 4, 5, 6, 0, 1]), batch_size=2)
    assert counts["tokens"] == 8 - 3  # every position with a full memory and a next word
    by_hand = sum(model(contexts(torch.tensor([1, 2, 3, 4, 5, 6, 0, 1]), torch.tensor([m]), 3),
                        torch.tensor([[1, 2, 3, 4, 5, 6, 0, 1][m + 1]])).loss.item() for m in range(2, 7))
    assert counts["nll"] == pytest.approx(by_hand, rel=1e-5)


def test_a_mean_cost_past_a_floats_range_is_an_infinite_perplexity():
    """exp(710) overflows a float: a diverging run's cost so far once ended training in an
    OverflowError traceback; NaN stays NaN."""
    metrics = get_task("ptb").metrics
    assert metrics({"nll": 710.0 * 20, "tokens": 20})["perplexity"] == math.inf
    assert metrics({"nll": 709.0, "tokens": 1})["perplexity"] == pytest.approx(math.exp(709.0))
    assert math.isnan(metrics({"nll": math.nan, "tokens": 1})["perplexity"])


def test_a_diverged_run_stops_and_says_so(cli, small_ptb, tmp_path):
    """Without clipping (a bound no gradient reaches) and with a learning rate far too high, the
    validation perplexity is not finite after the first epoch: training stops there, not after
    --max-epochs of it, with one line and exit code 1 (a failed run); the run holds that epoch,
    finished, and a resume does not train it further."""
    out = tmp_path / "diverged"
    result = cli("train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "4", "--lr", "1e6",
                 "--max-grad-norm", "1e9", "--out", out)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {out}: diverged in epoch 1 (validation perplexity not finite) and stopped")
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("ptb: 1 epoch, ") and "diverged" in result.stdout and "finished" not in result.stdout
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and state["finished"] and len(state["history"]) == 1
    assert not math.isfinite(state["history"][0]["valid_perplexity"])
    resumed = cli("train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "4", "--resume", out)
    # One line either way: diverged again (weights finite, costs past a float's range), or NaN weights refused.
    assert resumed.exit_code in (1, 2) and "Traceback" not in resumed.stderr
    assert re.match(f"error: {re.escape(str(out))}(/model.safetensors)?: (diverged|weights hold NaN)",
                    resumed.stderr.strip().splitlines()[-1]), resumed.stderr
    assert json.loads((out / "state.json").read_text())["epoch"] == 1


def test_learning_rate_is_divided_when_validation_stops_improving():
    config = LMTrainConfig()
    assert next_lr([{"valid_loss": 5.0}], 0.01, config) == 0.01
    assert next_lr([{"valid_loss": 5.0}, {"valid_loss": 4.9}], 0.01, config) == 0.01
    assert next_lr([{"valid_loss": 5.0}, {"valid_loss": 5.0}], 0.01, config) == pytest.approx(0.01 / 1.5)
    assert next_lr([{"valid_loss": 5.0}, {"valid_loss": 4.9999}], 0.01, config) == pytest.approx(0.01 / 1.5)


SMALL = ["--dim", "16", "--hops", "2", "--memory-size", "8", "--batch-size", "32"]


def test_training_lowers_perplexity_and_eval_reports_it(cli, small_ptb, tmp_path):
    out = tmp_path / "lm"
    result = cli("train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "3", "--lr", "0.05",
                 "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    history = json.loads(result.stdout)["history"]
    vocabulary = len(json.loads((out / "vocab.json").read_text())["words"])
    assert len(history) == 3 and history[-1]["train_perplexity"] < history[0]["train_perplexity"]
    assert history[-1]["valid_perplexity"] < vocabulary / 3  # far better than guessing uniformly
    evaluated = cli("eval", out, "--split", "valid", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["perplexity"] == pytest.approx(history[-1]["valid_perplexity"], rel=1e-6)
    assert_one_line_error(cli("predict", tmp_path / "x", "-c", out), "story file not found")
    (tmp_path / "s.txt").write_text("the stock market\n")
    continued = cli("predict", tmp_path / "s.txt", "-c", out, "--next", "2")  # a language model continues text
    assert continued.exit_code == 0 and len(continued.stdout.split()) == 2


def test_resume_reaches_the_same_result_as_an_uninterrupted_run(cli, small_ptb, tmp_path):
    args = ["train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "2"]
    assert cli(*args, "--out", tmp_path / "whole").exit_code == 0
    stopped = cli(*args, "--out", tmp_path / "parts", "--max-steps", "70")  # stops inside epoch 1
    assert stopped.exit_code == 0 and "70 steps, stopped; continue with --resume" in stopped.stdout
    assert "nan" not in stopped.stdout  # no validation ran: none is reported
    assert json.loads((tmp_path / "parts" / "state.json").read_text())["steps"] == 70
    resumed = cli(*args, "--resume", tmp_path / "parts")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming at epoch 1, step 70" in resumed.stderr
    whole, parts = (tmp_path / d / "model.safetensors" for d in ("whole", "parts"))
    assert whole.read_bytes() == parts.read_bytes()
    states = [json.loads((tmp_path / d / "state.json").read_text()) for d in ("whole", "parts")]
    for state in states:  # all but the time it took
        del state["seconds"], state["epoch_seconds"]
        assert all(record.pop("train_seconds") > 0 for record in state["history"])
    assert states[0] == states[1]


def test_a_smaller_max_epochs_on_resume_ends_the_run_at_an_epochs_end_and_is_refused_inside_one(cli, small_ptb, tmp_path):
    """A run stopped at the end of epoch 1 and resumed with --max-epochs 1 is finished there as a
    run asked for one epoch from the start is: the same weights and state, its test perplexity on
    its card. Stopped inside epoch 2, --max-epochs 1 is refused (a finished run's weights are an
    epoch's), and nothing is written."""
    args = ["train", "ptb", "--data-dir", small_ptb, *SMALL]
    one, two, inside = (tmp_path / name for name in ("one", "two", "inside"))
    assert cli(*args, "--max-epochs", "1", "--out", one).exit_code == 0
    steps = json.loads((one / "state.json").read_text())["steps"]  # an epoch's
    assert cli(*args, "--max-epochs", "3", "--max-steps", steps, "--out", two).exit_code == 0
    summary = json.loads(cli(*args, "--max-epochs", "1", "--resume", two, "--json").stdout)
    assert summary["finished"] and summary["test_perplexity"] is not None
    assert (two / "model.safetensors").read_bytes() == (one / "model.safetensors").read_bytes()
    states = [json.loads((run / "state.json").read_text()) for run in (one, two)]
    for state in states:  # all but the time it took
        del state["seconds"], state["epoch_seconds"]
        assert all(record.pop("train_seconds") > 0 for record in state["history"])
    assert states[0] == states[1] and states[1]["finished"]
    cards = [front_matter((run / "README.md").read_text())["results"] for run in (one, two)]
    assert cards[0] == cards[1] and cards[1]["test_perplexity"] == summary["test_perplexity"]
    assert cli(*args, "--max-epochs", "3", "--max-steps", steps + 5, "--out", inside).exit_code == 0
    state = (inside / "state.json").read_bytes()
    assert_one_line_error(cli(*args, "--max-epochs", "1", "--resume", inside),
                          f"{inside}: --max-epochs is 1, but the run has trained 1 epoch and 5 steps of the next: it "
                          "cannot end inside an epoch; resume with a larger --max-epochs (2 or more)")
    assert (inside / "state.json").read_bytes() == state


def test_a_diverged_trial_whose_file_was_lost_is_read_from_its_run_again(cli, small_ptb, tmp_path):
    """A trial whose run diverged (its test perplexity not finite: null on its card) and whose
    trial file was lost (a kill between the run's last write and the trial file's) is taken from
    its run again, and the sweep ends as it did; --json and results.json are standard JSON, null
    where not finite."""
    out = tmp_path / "sweep"
    args = ["sweep", "ptb", "--data-dir", small_ptb, "--out", out, "--grid", "lr=0.01,10000", *SMALL, "--restarts", "1",
            "--max-epochs", "2", "--max-grad-norm", "1e30", "--workers", "1", "--json"]

    def strict(text: str):
        return json.loads(text, parse_constant=lambda constant: pytest.fail(f"not standard JSON: {constant}"))

    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    rows = strict(first.stdout)["rows"]
    assert rows[1]["configuration"] == "lr=10000.0" and rows[1]["test_perplexity"] is None  # diverged
    (out / "trials" / "lr=10000.0" / "restart0.json").unlink()
    again = cli(*args)
    assert again.exit_code == 0, again.stderr
    assert strict(again.stdout)["rows"] == rows and "(lr " not in again.stderr  # nothing trained
    assert not math.isfinite(json.loads((out / "trials" / "lr=10000.0" / "restart0.json").read_text())["test_perplexity"])
    # results.json, which people and other programs read, is standard JSON too; `plot` reads its
    # null as the diverged configuration's, not as one not trained yet.
    assert strict((out / "results.json").read_text())["rows"][1]["test_perplexity"] is None
    shown = cli("plot", out)
    assert shown.exit_code == 0, shown.stderr
    assert "nan" in shown.stdout and "not trained yet" not in shown.stdout


def test_resume_reads_the_data_it_started_on_and_refuses_other_files(cli, small_ptb, tmp_path, monkeypatch):
    """Without --data-dir a resumed run reads the folder it recorded (the default folder holds no
    corpus here: it was "no ptb data"); other files, even of the same vocabulary, are refused,
    naming the folder it started on."""
    import shutil

    out = tmp_path / "lm"
    stopped = cli("train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-steps", "20", "--out", out)
    assert stopped.exit_code == 0, stopped.stderr
    other = shutil.copytree(small_ptb, tmp_path / "other")
    lines = (other / "ptb.train.txt").read_text().splitlines(keepends=True)
    (other / "ptb.train.txt").write_text("".join(lines[1:] + lines[:1]))  # the same words, another file
    state = (out / "state.json").read_bytes()
    assert_one_line_error(cli("train", "ptb", "--data-dir", other, "--resume", out, "--max-steps", "40"),
                          f"{out}: was trained on other data files than {other.resolve()}'s: resume it with "
                          f"--data-dir {small_ptb.resolve()}")
    assert (out / "state.json").read_bytes() == state  # nothing written
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no corpus where the task looks by default
    resumed = cli("train", "ptb", "--resume", out, "--max-steps", "40")
    assert resumed.exit_code == 0 and "resuming at epoch 1, step 20" in resumed.stderr, resumed.stderr
    assert json.loads((out / "state.json").read_text())["steps"] == 40


def test_train_reports_the_last_valid_and_the_test_perplexity(cli, small_ptb, tmp_path, monkeypatch):
    """The summary (--json, and the last line) has the last epoch's valid perplexity and, once the run
    has finished, the test perplexity its card holds and `eval` computes: evaluated once, for both;
    a finished run resumed reports its card's without evaluating again."""
    from memn2n_cli.lm import training

    evaluated = []  # every evaluate_lm of training: one per epoch (valid), and the test set's
    monkeypatch.setattr(training, "evaluate_lm", lambda *args: evaluated.append(1) or evaluate_lm(*args))
    args, out = ["train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "2", "--json"], tmp_path / "lm"
    stopped = json.loads(cli(*args, "--max-steps", "3", "--out", out).stdout)  # within epoch 1
    assert (stopped["valid_perplexity"], stopped["test_perplexity"], evaluated) == (None, None, [])
    summary = json.loads(cli(*args, "--resume", out).stdout)
    assert summary["finished"] and len(evaluated) == 2 + 1
    assert summary["valid_perplexity"] == summary["history"][-1]["valid_perplexity"]
    card = front_matter((out / "README.md").read_text())["results"]
    assert summary["test_perplexity"] == card["test_perplexity"]
    assert summary["test_perplexity"] == pytest.approx(json.loads(cli("eval", out, "--json").stdout)["perplexity"])
    del evaluated[:]
    again = cli(*args[:-1], "--resume", out)  # finished already: nothing trained, nothing evaluated
    assert again.exit_code == 0 and evaluated == [], again.stderr
    assert again.stdout.strip() == (f"ptb: 2 epochs, {summary['steps']} steps, finished; valid perplexity "
                                    f"{summary['valid_perplexity']:.1f}, test perplexity {summary['test_perplexity']:.1f}")


def test_zero_is_an_option_value_not_the_default(cli, small_ptb, tmp_path):
    """--init-std 0 is kept (it once became 0.05); unset options are the language model's defaults."""
    out = tmp_path / "zero"
    result = cli("train", "ptb", "--data-dir", small_ptb, *SMALL, "--init-std", "0",
                 "--max-steps", "1", "--out", out)
    assert result.exit_code == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["init_std"] == 0
    assert config["model"]["linear_dim"] == 8 and config["training"]["lr"] == 0.01  # LMConfig's and LMTrainConfig's


def test_language_model_bad_input(cli, tmp_path, small_ptb):
    assert_one_line_error(cli("train", "ptb", "--data-dir", tmp_path), "ptb.train.txt")
    assert_one_line_error(cli("train", "ptb", "--data-dir", small_ptb, "--dim", "10", "--linear-dim", "20"), "--linear-dim")
    assert_one_line_error(cli("train", "text8", "--data-dir", tmp_path), "missing text8 (text8 data)")


@pytest.mark.slow
def test_two_processes_reach_what_one_process_reaches(cli, small_ptb, tmp_path):
    """torchrun with 2 CPU processes (gloo): the same weights as one process with the same global batch."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    args = ["train", "ptb", "--data-dir", str(small_ptb), *SMALL, "--max-steps", "25"]
    assert cli(*args, "--out", tmp_path / "one").exit_code == 0
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "memn2n_cli", *args, "--out", str(tmp_path / "two")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    # A rank's own error comes first in torchrun's stderr, its summary of the failure last.
    assert result.returncode == 0, result.stderr[:3000] + "\n[...]\n" + result.stderr[-1500:]
    one, two = (load_file(tmp_path / d / "model.safetensors") for d in ("one", "two"))
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-5, rtol=1e-4)
    state_one, state_two = (json.loads((tmp_path / d / "state.json").read_text()) for d in ("one", "two"))
    assert state_two["steps"] == state_one["steps"] == 25
    assert state_two["epoch_nll"] == pytest.approx(state_one["epoch_nll"], rel=1e-5)  # summed over both


@pytest.fixture(scope="module")
def small_lm(small_ptb, tmp_path_factory):
    from typer.testing import CliRunner

    from memn2n_cli.cli import app

    out = tmp_path_factory.mktemp("lm") / "run"
    result = CliRunner().invoke(app, ["train", "ptb", "--data-dir", str(small_ptb), *SMALL, "--max-epochs", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def test_predict_continues_a_prompt(cli, small_lm, tmp_path):
    (tmp_path / "prompt.txt").write_text("the company said zyzzyva\n")
    result = cli("predict", tmp_path / "prompt.txt", "-c", small_lm, "--next", "4", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["prompt"] == ["the", "company", "said", "zyzzyva"] and len(record["next"]) == 4
    assert all(0 < n["probability"] <= 1 for n in record["next"])
    assert "zyzzyva" in result.stderr and result.stderr.count("never saw") == 1
    plain = cli("predict", tmp_path / "prompt.txt", "-c", small_lm, "--next", "4")
    assert plain.stdout.split() == [n["word"] for n in record["next"]]
    assert_one_line_error(cli("predict", tmp_path / "prompt.txt", "-c", small_lm, "--task", "1"),
                          "--task is an option of question answering")  # the flag as typed, not the field's name


def test_a_short_prompt_is_read_after_the_last_words_of_the_training_text():
    """Training always fills all N slots: a prompt of k < N words predicts what the last N - k
    words of ``before`` (a run's training text) then the prompt predict."""
    torch.manual_seed(0)
    words = ["company", EOS, "said", "sales", "the", UNK]
    model = MemN2NLM(LMConfig(vocab_size=6, dim=8, hops=2, memory_size=6, linear_dim=4))
    prompt, before = ["the", "company", "said"], ["sales", "said", "the", "sales", "rose", EOS]  # "rose": <unk>
    continued = continue_text(model, words, prompt, 5, before)
    assert continued == continue_text(model, words, ["sales", "rose", EOS] + prompt, 5)  # exactly: the same memories
    with torch.no_grad():  # the first word by hand, from the filled memory, the current word first
        ids = [words.index(w) for w in ["said", "company", "the", EOS, UNK, "sales"]]
        probabilities = torch.softmax(model(torch.tensor([ids])).logits[0], -1)
    assert continued[0] == (words[int(probabilities.argmax())], float(probabilities.max()))
    long = prompt * 2  # N words: nothing to fill
    assert continue_text(model, words, long, 2, before) == continue_text(model, words, long, 2)


def test_predict_reads_a_short_prompt_after_the_runs_last_training_words(cli, small_lm, small_ptb, tmp_path):
    last = json.loads((small_lm / "config.json").read_text())["data"]["last_words"]
    train = get_task("ptb").load(small_ptb)
    assert last == [train.words[i] for i in train.ids["train"][-8:]] and last[-1] == EOS  # memory 8
    (tmp_path / "short.txt").write_text("the company said\n")
    (tmp_path / "filled.txt").write_text(" ".join(last[-5:]) + " the company said\n")
    short, filled = (cli("predict", tmp_path / name, "-c", small_lm, "--next", "5", "--json")
                     for name in ("short.txt", "filled.txt"))
    assert short.exit_code == 0 and filled.exit_code == 0, (short.stderr, filled.stderr)
    assert json.loads(short.stdout)["next"] == json.loads(filled.stdout)["next"]


def test_figure_3_in_the_terminal_and_as_png(cli, small_lm, small_ptb, tmp_path):
    pytest.importorskip("matplotlib", reason="the PNG needs the optional extra memn2n[plot]")
    from memn2n_cli.lm.training import attention_by_position, load_lm

    model, _, _ = load_lm(small_lm)
    weights = attention_by_position(model, get_task("ptb").load(small_ptb).ids["test"])
    assert weights.shape == (2, 8) and torch.allclose(weights.max(dim=1).values, torch.ones(2, dtype=weights.dtype))
    result = cli("visualize", "-c", small_lm, "--memory-positions", "--out", tmp_path / "fig3.png")
    assert result.exit_code == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["1", "2"]  # a row per hop
    # Piped, without colour, each cell is a shade from " " (no attention) to "█" (the row's most).
    lines = result.stdout.splitlines()
    at = lines[1].index("position 1")  # the column of the cells
    rows = [line[at:at + 8] for line in lines[2:]]
    assert all(len(row) == 8 and set(row) <= set(" ░▒▓█") and "█" in row for row in rows), rows
    import matplotlib.image

    picture = matplotlib.image.imread(tmp_path / "fig3.png")  # 8 x 2 inches at 150 dpi, RGBA
    assert picture.shape == (300, 1200, 4) and picture[..., :3].std() > 0.1  # drawn, not blank
    assert_one_line_error(cli("visualize", "-c", small_lm, "--hops"), "--memory-positions")


SWEEP = ["--grid", "dim=16", "--grid", "memory_size=8", "--grid", "batch_size=32", "--grid", "max_epochs=2"]


def test_language_model_sweep_selects_by_validation_and_resumes(cli, small_ptb, tmp_path, monkeypatch):
    """Table 2's protocol: per configuration, best of N restarts by validation perplexity; each
    trial's test set evaluated once."""
    from memn2n_cli.lm import training

    evaluated = []  # the size of every set evaluated: each epoch's validation set, each trial's test set
    monkeypatch.setattr(training, "evaluate_lm", lambda model, ids, *a: evaluated.append(len(ids)) or evaluate_lm(model, ids, *a))
    out = tmp_path / "sweep"
    args = ["sweep", "ptb", "--data-dir", small_ptb, "--grid", "hops=1,2", *SWEEP, "--restarts", "2",
            "--workers", "1", "--out", out, "--json"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    corpus = get_task("ptb").load(small_ptb).ids
    assert sorted(evaluated) == sorted([len(corpus["valid"])] * 2 * 4 + [len(corpus["test"])] * 4)
    rows = json.loads(result.stdout)["rows"]
    assert [(r["configuration"], r["hops"], r["memory_size"]) for r in rows] == [("hops=1", 1, 8), ("hops=2", 2, 8)]
    trials = json.loads((out / "results.json").read_text())["trials"]
    for row in rows:
        restarts = [t for t in trials if t["label"] == row["configuration"]]
        assert sorted(t["seed"] for t in restarts) == [0, 1] and all(t["epochs"] == 2 for t in restarts)
        best = min(restarts, key=lambda t: t["valid_perplexity"])
        assert (row["selected"], row["valid_perplexity"]) == (best["restart"], best["valid_perplexity"])
        # The kept run is an ordinary run, and the figure is its test perplexity, by hand: every
        # position with a full memory, the model's summed cross-entropy, in one batch.
        import memn2n

        model, test = memn2n.load(row["run"]).model, get_task("ptb").load(small_ptb).ids["test"]
        positions = torch.arange(model.config.memory_size - 1, len(test) - 1)
        with torch.no_grad():
            nll = model(contexts(test, positions, model.config.memory_size), test[positions + 1]).loss.item()
        assert row["test_perplexity"] == pytest.approx(math.exp(nll / len(positions)), rel=1e-5)
    assert "| 16 | 2 | 8 |" in (out / "results.md").read_text()
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 4
    # Run again: nothing is trained; a lost trial file is recomputed from its finished run directory.
    (out / "trials" / "hops=2" / "restart1.json").unlink()
    del evaluated[:]
    again = cli(*args)
    assert again.exit_code == 0 and json.loads(again.stdout)["rows"] == rows and evaluated == []  # from its card
    assert "(lr " not in again.stderr and again.stderr.count("[4/4]") == 1  # no epoch was trained
    other = ["sweep", "ptb", "--data-dir", small_ptb, "--grid", "hops=1,2", *SWEEP, "--restarts", "3", "--out", out]
    assert_one_line_error(cli(*other), "other settings")


def test_a_language_model_sweep_writes_its_table_after_each_trial(small_ptb, tmp_path):
    """A Table 2 sweep trains for days: results.json (and results.md, and so `memn2n plot`) is
    written after each finished trial, not only when the command ends."""
    from memn2n_cli.lm.sweep import LMSweepSpec, run_lm_sweep

    out, seen = tmp_path / "sweep", []
    spec = LMSweepSpec("ptb", restarts=1, seed=0, data_dir=str(small_ptb),
                       grid={"hops": [1, 2], "dim": [16], "memory_size": [8], "batch_size": [32], "max_epochs": [1]})

    def on_trial(result: dict, done: int, total: int) -> None:
        rows = json.loads((out / "results.json").read_text())["rows"]
        seen.append({row["configuration"]: row.get("valid_perplexity") for row in rows})
        assert seen[-1][result["label"]] == result["valid_perplexity"]

    run_lm_sweep(spec, out, on_trial=on_trial)
    assert [sorted(k for k, v in table.items() if v is not None) for table in seen] == [["hops=1"], ["hops=1", "hops=2"]]
    assert "hops=2" in (out / "results.md").read_text()


@pytest.mark.slow
def test_language_model_sweep_backends_agree(cli, small_ptb, tmp_path):
    """One process, a pool of two, and Ray with two workers train the same restarts."""
    args = ["sweep", "ptb", "--data-dir", small_ptb, "--dim", "16", "--memory-size", "8", "--batch-size", "32",
            "--max-epochs", "1", "--restarts", "2", "--json"]  # train's options, given directly
    rows = [json.loads(cli(*args, "--workers", n, "--out", tmp_path / n).stdout)["rows"][0] for n in ("1", "2")]
    ray = pytest.importorskip("ray", reason="the Ray backend is the optional extra memn2n[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = cli(*args, "--backend", "ray", "--out", tmp_path / "ray")
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.stderr
    rows.append(json.loads(result.stdout)["rows"][0])
    assert (tmp_path / "ray" / "defaults" / "restart1" / "model.safetensors").is_file()  # written by the worker
    for row in rows[1:]:
        assert row["selected"] == rows[0]["selected"]
        assert row["valid_perplexity"] == pytest.approx(rows[0]["valid_perplexity"], rel=1e-4)  # 1 thread vs 2


@pytest.mark.parametrize("args, fragment", [
    (["--select", "train"], "validation perplexity"),
    (["--joint"], "no --task or --joint"),
    (["--grid", "hops=0"], "--hops must be at least 1, not 0"),
    (["--grid", "batch_size=0"], "--batch-size must be at least 1, not 0"),
    (["--grid", "max_epochs=0"], "--max-epochs must be at least 1, not 0"),
    (["--grid", "encoding=bow"], "OPTION one of"),
    (["--max-epochs", "0"], "--max-epochs must be at least 1, not 0"),
    (["--encoding", "bow"], "no such option: --encoding"),
    (["--grid", "hops=1,2", "--hops", "3"], "--hops is given both"),
    (["--grid", "hops=2,1,2"], "--hops takes 2 twice in the grid"),
    (["--preset", "table1"], "--preset is table2, not 'table1'"),
    (["--preset", "table2", "--hops", "3"], "--preset table2 sets --hops for its columns itself"),
    (["--preset", "table2", "--grid", "lr=0.01,0.02"], "no --grid of several values"),
    (["--preset", "table2", "--column", "8 hops"], "--column '8 hops' is not a column of table2"),
    (["--column", "2 hops"], "--column names a column of a --preset"),
])
def test_language_model_sweep_bad_options(cli, small_ptb, tmp_path, args, fragment):
    assert_one_line_error(cli("sweep", "ptb", "--data-dir", small_ptb, "--out", tmp_path / "s", *args), fragment)


def test_a_sweep_on_a_folder_without_the_corpus_writes_nothing_and_the_right_folder_then_runs(cli, small_ptb, tmp_path):
    """A data folder lacking a file is refused before the sweep's folder is made: a sweep.json
    left behind would refuse the same --out with the right folder as "other settings"."""
    out, empty = tmp_path / "s", tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(cli("sweep", "ptb", "--data-dir", empty, "--out", out), "missing ptb.train.txt (ptb data)")
    assert not out.exists()
    done = cli("sweep", "ptb", "--data-dir", small_ptb, "--out", out, "--restarts", "1", "--max-epochs", "1",
               "--batch-size", "64", "--dim", "10", "--memory-size", "5", "--workers", "1", "--json")
    assert done.exit_code == 0, done.stderr


def test_table2_preset_is_the_papers_twelve_configurations_named_by_what_sets_them_apart():
    ptb, text8 = get_task("ptb"), get_task("text8")
    table2 = ptb.presets()["table2"]
    assert list(table2) == ["2 hops", "3 hops", "4 hops", "5 hops", "6 hops", "7 hops", "memory 25", "memory 50",
                            "memory 75", "memory 125", "memory 150", "7 hops, memory 200"]
    assert table2["memory 25"] == {"dim": 150, "hops": 6, "memory_size": 25}
    assert table2["7 hops, memory 200"] == {"dim": 150, "hops": 7, "memory_size": 200}
    assert {(c["dim"], c["hops"], c["memory_size"]) for c in table2.values()} == set(ptb.TABLE_2)
    assert len(text8.presets()["table2"]) == 11 and text8.presets()["table2"]["2 hops"]["dim"] == 500


def test_table2_sweep_trains_the_cells_asked_for_and_lays_out_all_twelve(cli, small_ptb, tmp_path):
    out = tmp_path / "table2"
    args = ["sweep", "ptb", "--data-dir", small_ptb, "--preset", "table2", "--max-epochs", "1", "--batch-size", "64",
            "--workers", "1", "--out", out, "--json"]
    result = cli(*args, "--column", "2 hops")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [r["configuration"] for r in rows] == list(get_task("ptb").presets()["table2"])
    trained = [r for r in rows if r["restarts"]]
    assert [(r["configuration"], r["dim"], r["hops"], r["memory_size"], r["epochs"]) for r in trained] == [
        ("2 hops", 150, 2, 100, 1)]  # one restart by default
    assert (out / "2-hops" / "restart0" / "model.safetensors").is_file()
    table = (out / "results.md").read_text()
    row = trained[0]
    # A 300-sentence corpus, not Penn Treebank as published: no paper's figures beside it
    # (test_results_table_names_the_papers_figures_for_table_2_configurations has them).
    assert f"| 2 hops | 150 | 2 | 100 | {row['valid_perplexity']:.1f} | {row['test_perplexity']:.1f} |  |  | " in table
    assert "| memory 25 | 150 | 6 | 25 | not trained yet |  |  |  |" in table
    assert "the paper has no figures for these data or configurations." in table
    assert "| 7 hops, memory 200 | 150 | 7 | 200 | not trained yet |" in table
    # The next cell, in the same folder: the first is kept, not trained again.
    again = cli(*args, "--column", "memory 25")
    assert again.exit_code == 0, again.stderr
    assert "2 hops restart 0: epoch" not in again.stderr and "memory 25 restart 0: epoch 1" in again.stderr
    rows = {r["configuration"]: r for r in json.loads(again.stdout)["rows"]}
    assert rows["2 hops"] == row and rows["memory 25"]["restarts"] == 1 and rows["4 hops"]["restarts"] == 0


def test_results_table_names_the_papers_figures_for_table_2_configurations():
    from memn2n_cli.lm.sweep import LMSweepSpec, results_markdown, summarize

    spec = LMSweepSpec(task="ptb", restarts=2, seed=0, grid={"hops": [2, 7], "memory_size": [100]}, data_dir=".")
    trials = [{"label": f"hops={h}", "restart": r, "seed": r, "epochs": 40, "run": f"r{h}{r}",
               "valid_perplexity": v, "test_perplexity": v - 5} for h, r, v in [(2, 0, 131.0), (2, 1, 129.5),
                                                                                 (7, 0, 130.0), (7, 1, math.nan), (7, 2, 125.0)]]
    table = results_markdown(summarize(spec, trials, Path("out"), published("ptb.sha256")))
    assert "| 150 | 2 | 100 | 129.5 | 124.5 | 128 | 121 | 129.5-131.0 | 40 |" in table
    # A diverged restart (nan) is never kept, and its perplexity is the range's high end (sorted()
    # alone leaves a NaN where it finds it: "130.0-125.0").
    assert "| 150 | 7 | 100 | 125.0 | 120.0 | 120 | 114 | 125.0-nan | 40 |" in table
    assert "the paper's Table 2 (best of 10) beside it." in table
    # Data other than the corpus as published (a generated stand-in, one file edited): no paper's figures.
    edited = {**published("ptb.sha256"), "ptb.test.txt": "0" * 64}
    table = results_markdown(summarize(spec, trials, Path("out"), edited))
    assert "| 150 | 2 | 100 | 129.5 | 124.5 |  |  | 129.5-131.0 | 40 |" in table
    assert "the paper has no figures for these data or configurations." in table


def test_each_loader_names_the_kind_of_run_it_takes(small_lm, trained_run):
    from memn2n_cli.checkpoint import load_model
    from memn2n_cli.errors import UserError
    from memn2n_cli.lm.training import load_lm

    with pytest.raises(UserError, match="is a 'ptb' run; this takes a question-answering run"):
        load_model(small_lm)
    with pytest.raises(UserError, match="is a 'babi' run; this takes a language-model run"):
        load_lm(trained_run[0])


def test_resume_refuses_other_model_options(cli, small_lm, small_ptb):
    """--resume with another --dim would have trained the saved model and ignored it."""
    result = cli("train", "ptb", "--data-dir", small_ptb, "--resume", small_lm, "--dim", "20")
    assert_one_line_error(result, "holds a model with dim 16, not 20: resume with the run's model options")


def test_a_checkpoint_caught_between_two_renames_is_refused(cli, small_lm, small_ptb, tmp_path):
    """New weights beside the previous checkpoint's state.json (a kill between two renames) used
    to resume silently as another model; the manifest written last names each file."""
    import shutil

    run = shutil.copytree(small_lm, tmp_path / "run")
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({**state, "step": state["step"] + 1}))  # not the saved one
    assert_one_line_error(cli("train", "ptb", "--data-dir", small_ptb, "--resume", run, "--max-epochs", "3"),
                          "state.json is not the file manifest.json names")
    assert_one_line_error(cli("eval", run), "state.json is not the file manifest.json names")


def test_a_run_killed_after_a_checkpoint_within_an_epoch_resumes_to_the_same_weights(cli, small_ptb, tmp_path, monkeypatch):
    """Checkpoints every --checkpoint-every steps within an epoch, with a progress line each: a run
    that dies right after the third (mid-epoch 1) and is resumed ends with the weights, bit for bit,
    of a run never interrupted."""
    import memn2n_cli.lm.training as lm_training

    args = ["train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "2", "--checkpoint-every", "40"]
    whole = cli(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0 and "ptb epoch 1: 40 of" in whole.stderr and "so far (checkpointed)" in whole.stderr
    die_after_saves(monkeypatch, lm_training, "write_run", 3)
    killed = cli(*args, "--out", tmp_path / "parts")
    assert isinstance(killed.exception, SystemError)
    monkeypatch.undo()
    parts = tmp_path / "parts"
    assert json.loads((parts / "state.json").read_text())["step"] == 120
    # The metrics file as it trained: a progress line per checkpoint. One written after the last
    # checkpoint, by a run killed before the next, is dropped when it resumes.
    S = read_history(parts)[0]["steps_in_epoch"]  # steps in an epoch
    assert [(line["step_in_epoch"], line["steps_in_epoch"]) for line in read_history(parts)] == [(40, S), (80, S), (120, S)]
    with open(parts / "history.jsonl", "a") as f:
        f.write(json.dumps({**read_history(parts)[-1], "step_in_epoch": 160, "step": 160}) + "\n")
    resumed = cli(*args, "--resume", parts)
    assert resumed.exit_code == 0 and "resuming at epoch 1, step 120" in resumed.stderr
    assert (tmp_path / "whole" / "model.safetensors").read_bytes() == (parts / "model.safetensors").read_bytes()
    lines = [read_history(tmp_path / d) for d in ("whole", "parts")]
    assert [line["step"] for line in lines[1]] == [line["step"] for line in lines[0]]  # each once, in order
    without_time = [[{k: v for k, v in line.items() if "seconds" not in k} for line in run] for run in lines]
    assert without_time[0] == without_time[1]
    epochs = [line for line in lines[1] if "step_in_epoch" not in line]
    state = json.loads((parts / "state.json").read_text())
    assert [{k: v for k, v in line.items() if k not in ("seconds", "step")} for line in epochs] == state["history"]
    assert [line["step"] for line in epochs] == [S, 2 * S]
    check_manifest(parts)
    # Its model card: the test perplexity `eval` computes, the last epoch's valid perplexity.
    card = front_matter((parts / "README.md").read_text())
    assert card["results"]["test_perplexity"] == pytest.approx(json.loads(cli("eval", parts, "--json").stdout)["perplexity"])
    assert card["results"]["valid_perplexity"] == epochs[-1]["valid_perplexity"] and card["results"]["finished"]


def test_a_full_disk_mid_checkpoint_leaves_the_last_one_whole(cli, small_ptb, tmp_path, monkeypatch):
    """A language model's checkpoint is several files: the disk fills after its weights were
    written, at its state: the folder still holds the checkpoint before, whole (its manifest
    holds), and `--resume` ends with the weights of a run that never failed (issue 29, item 5)."""
    from tests.test_run_directory import assert_disk_full, fill_the_disk

    args = ["train", "ptb", "--data-dir", small_ptb, *SMALL, "--max-epochs", "1", "--checkpoint-every", "40"]
    assert cli(*args, "--out", tmp_path / "whole").exit_code == 0
    parts = tmp_path / "parts"
    fill_the_disk(monkeypatch, "state.json", 2)
    assert_disk_full(cli(*args, "--out", parts), parts)
    monkeypatch.undo()
    check_manifest(parts)
    assert json.loads((parts / "state.json").read_text())["step"] == 40 and not list(parts.glob(".*"))
    resumed = cli(*args, "--resume", parts)
    assert resumed.exit_code == 0 and "resuming at epoch 1, step 40" in resumed.stderr
    assert (parts / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
