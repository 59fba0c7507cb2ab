"""Every run directory holds a model card: README.md with YAML front matter (its settings, data,
results beside the paper's, where it came from) and a text a person reads; the manifest covers it."""

from __future__ import annotations

import json

import pytest

from memn2n_cli.checkpoint import check_manifest, read_json
from memn2n_cli.configs import qa_settings
from memn2n_cli.errors import UserError
from memn2n_cli.model_card import CARD_FILE, _table_1_column, lm_card, qa_card
from tasks.babi import TABLE_1_COLUMNS, BabiTask
from tests.conftest import ROOT, published


def front_matter(card: str) -> dict:
    """The card's front matter, read as its module says any reader can: each value is JSON. Where
    PyYAML is installed, a YAML reader must read the same."""
    head = card.split("---\n", 2)[1]
    fields = {key: json.loads(value) for key, value in (line.split(": ", 1) for line in head.splitlines())}
    try:
        import yaml
    except ImportError:
        return fields
    assert yaml.safe_load(head) == fields
    return fields


def test_a_trained_run_has_a_card_with_its_results_beside_table_1(trained_run, en_is_upstream):
    out, summary = trained_run
    card = (out / CARD_FILE).read_text()
    fields = front_matter(card)
    config = read_json(out / "config.json")
    assert (fields["task"], fields["kind"], fields["tasks"]) == ("babi", "question answering", [1])
    assert fields["training"] == config["training"] and fields["model"]["dim"] == config["model"]["dim"]
    assert fields["data"]["files"] == config["data"]["files"]
    assert fields["results"]["test_error"] == {"1": summary["tasks"][0]["test_error"]}
    # The run has the defaults: Table 1's PE LS RN column, whose task 1 error is 0.0; on the
    # simulator's tasks, not the paper's data, none.
    table_1 = {"table": "Table 1", "column": "PE LS RN", "test_error": {"1": 0.0}, "mean_test_error": 0.0}
    assert fields["paper"] == (table_1 if en_is_upstream else None)
    assert ("the paper's Table 1, column PE LS RN" in card) == en_is_upstream
    hindi = {**config, "data": {"files": published("babi_v1.2.sha256", "hn/")}}
    assert front_matter(qa_card(hindi, summary["tasks"]).decode())["paper"] is None
    assert fields["command"] is None  # trained in this process, not from a command line (see below)
    assert fields["memn2n_version"] == config["memn2n_version"]
    assert f"| 1 | {summary['tasks'][0]['test_error']:.1f} |" in card and "memn2n predict story.txt" in card
    assert CARD_FILE in read_json(out / "manifest.json")["sha256"]


def test_the_command_line_is_recorded_as_typed(monkeypatch):
    from memn2n_cli.model_card import invocation

    monkeypatch.setattr("sys.argv", ["/home/u/.venv/bin/memn2n", "train", "babi", "--out", "my runs/a"])
    assert invocation() == "memn2n train babi --out 'my runs/a'"
    monkeypatch.setattr("sys.argv", ["/x/memn2n_cli/__main__.py", "train", "ptb"])  # python -m memn2n_cli
    assert invocation() == "memn2n train ptb"
    monkeypatch.setattr("sys.argv", ["notebook.py"])
    assert invocation() is None


def test_a_changed_card_is_refused_like_any_file_of_the_run(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run[0], copy)
    (copy / CARD_FILE).write_text((copy / CARD_FILE).read_text().replace("babi", "ptb"))
    with pytest.raises(UserError, match="README.md is not the file manifest.json names"):
        check_manifest(copy)


@pytest.mark.parametrize("label", list(TABLE_1_COLUMNS))
def test_each_table_1_column_is_found_from_a_runs_settings(label):
    column = TABLE_1_COLUMNS[label]
    options, training = qa_settings({k: v for k, v in column.items() if k != "joint"}, column.get("joint", False))
    config = {"task": "babi", "model": vars(options), "training": {**vars(training), "seed": 7},
              "joint": column.get("joint", False)}
    assert _table_1_column(config) == label
    assert _table_1_column({**config, "model": {**vars(options), "hops": 4}}) is None  # no column has 4 hops


def test_the_bundled_model_has_a_card():
    bundled = ROOT / "memn2n_cli" / "pretrained" / "babi-joint"
    fields = front_matter((bundled / CARD_FILE).read_text())
    assert fields["paper"]["column"] == "PE LS RN joint" and fields["paper"]["mean_test_error"] == 12.4
    assert fields["results"]["mean_test_error"] == pytest.approx(
        sum(r["test_error"] for r in read_json(bundled / "metrics.json")["tasks"]) / 20)
    check_manifest(bundled)


def test_a_language_model_card_names_table_2s_figures_for_its_configuration():
    config = {"task": "ptb", "model": {"dim": 150, "hops": 6, "memory_size": 100}, "training": {"seed": 0},
              "data": {"tokens": {"train": 1}, "files": published("ptb.sha256")}, "created": "2026-12-07T00:00:00+00:00"}
    fields = front_matter(lm_card(config, [{"epoch": 1, "valid_perplexity": 130.0}], 125.0, True).decode())
    assert fields["paper"] == {"table": "Table 2", "valid_perplexity": 122, "test_perplexity": 115}
    assert fields["results"] == {"epochs": 1, "finished": True, "valid_perplexity": 130.0, "test_perplexity": 125.0}
    other = front_matter(lm_card({**config, "model": {"dim": 16, "hops": 2, "memory_size": 8}}, [], None, False).decode())
    assert other["paper"] is None and other["results"]["test_perplexity"] is None
    edited = {**published("ptb.sha256"), "ptb.valid.txt": "0" * 64}
    assert front_matter(lm_card({**config, "data": {"files": edited}}, [], None, False).decode())["paper"] is None
    card = lm_card({**config, "data": {"generated": True}}, [{"epoch": 1, "valid_perplexity": 5.0}], 5.0, True).decode()
    assert front_matter(card)["paper"] is None and front_matter(card)["data"]["generated"] is True  # not Table 2's
    assert "Trained on a generated stand-in for ptb" in card and "Table 2" not in card
    assert "6 hops, d = 150; finished after 1 epoch." in card  # one epoch, not "1 epochs"
    assert "1 hop, d = 16; in training (2 epochs done)." in lm_card(
        {**config, "model": {"dim": 16, "hops": 1, "memory_size": 8}}, [{"epoch": 1}, {"epoch": 2}], None, False).decode()
    assert BabiTask.TABLE_1["PE LS RN joint"][1] == (12.4, 11)  # the figure the bundled card quotes
