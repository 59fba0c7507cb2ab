"""A run's model card: ``README.md`` in its model directory, YAML front matter (as on the Hugging
Face Hub) for programs and a short text for people: what the model is, how it was trained, how
well it does beside the paper, and how to use it. It is written with the run's other files and
covered by its manifest, so a run folder can be handed to someone on its own.

The front matter's values are written as JSON, which YAML reads as it is: no YAML library needed
to write it, and any YAML reader (or ``json.loads`` per line) reads it back.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

from memn2n_cli import __version__
from memn2n_cli.configs import qa_settings
from memn2n_cli.errors import UserError
from memn2n_cli.wording import counted
from tasks import get_task

CARD_FILE = "README.md"
PAPER = "Sukhbaatar, Szlam, Weston, Fergus: End-To-End Memory Networks, NIPS 2015 (arXiv:1503.08895)"


def invocation() -> str | None:
    """The command line that is running, as typed (None when memn2n was called from Python)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if program == "memn2n" or program == "__main__.py" and "memn2n_cli" in sys.argv[0]:
        return shlex.join(["memn2n", *sys.argv[1:]])
    return None


def source_commit() -> str | None:
    """The git commit of the code that is running, where it runs from a checkout ("-dirty" after
    it when the checkout has changes not committed)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _front_matter(fields: dict) -> str:
    return "---\n" + "".join(f"{key}: {_flow(value)}\n" for key, value in fields.items()) + "---\n"


def _flow(value) -> str:
    """``value`` as JSON that YAML reads as the same value: a float always with a point (YAML 1.1
    reads JSON's 1e-05 as a string), a number that is not finite as null."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        mantissa, e, exponent = repr(value).partition("e")
        return mantissa + ("" if "." in mantissa else ".0") + e + exponent
    return json.dumps(value)


def read_card(directory: Path) -> dict | None:
    """The front matter of a model directory's card (None for a run written before cards); a
    UserError naming the line that is not ``key: JSON``. The file is read as a run's files are
    (checkpoint.read_file: a regular file, of bounded size)."""
    from memn2n_cli.checkpoint import MAX_TEXT_BYTES, json_value, read_file

    path = directory / CARD_FILE
    if not path.exists() and not path.is_symlink():
        return None
    head = read_file(path, MAX_TEXT_BYTES).decode(errors="replace").split("---\n", 2)
    if len(head) < 3 or head[0]:
        raise UserError("not a model card: no front matter between --- lines", path)
    fields = {}
    for number, line in enumerate(head[1].splitlines(), 2):
        key, _, value = line.partition(": ")
        try:
            fields[key] = json_value(value)
        except ValueError:  # malformed, or nested too deep
            raise UserError("not a 'key: value' line of the front matter", path, number) from None
    return fields


def _provenance(config: dict) -> dict:
    return {"memn2n_version": config.get("memn2n_version", __version__), "commit": source_commit(),
            "command": invocation(), "created": config.get("created")}


def _table_1_column(config: dict) -> str | None:
    """The Table 1 column (of the task's ``table1`` preset) whose settings the run has, on every
    option one of its columns sets (encoding, linear start, random noise, hops, tying, joint)."""
    columns = get_task(config["task"]).presets().get("table1", {})
    keys = {key for column in columns.values() for key in column}
    ours = {**config["model"], **config["training"], "joint": bool(config.get("joint"))}
    for label, overrides in columns.items():
        joint = overrides.get("joint", False)
        options, training = qa_settings({k: v for k, v in overrides.items() if k != "joint"}, joint)
        theirs = {**vars(options), **vars(training), "joint": joint}
        if all(ours.get(key) == theirs[key] for key in keys):
            return label
    return None


def qa_card(config: dict, rows: list[dict]) -> bytes:
    """The card of a question-answering model: ``config`` (config.json), ``rows`` its error per
    numbered task and split (train's summary rows)."""
    task, tasks = get_task(config["task"]), config["tasks"]
    mean = {split: sum(r[f"{split}_error"] for r in rows) / len(rows) if all(f"{split}_error" in r for r in rows) else None
            for split in ("valid", "test")}  # no valid error when trained with --validation-fraction 0
    column = _table_1_column(config)
    figures = task.paper_figures("table1", config["data"].get("files", {}), tasks).get(column) if column else None
    paper = None if figures is None else {"table": "Table 1", "column": column, "test_error": figures["tasks"],
                                          "mean_test_error": figures["mean"]}
    model, training = config["model"], config["training"]
    fields = {"library_name": "memn2n", "task": config["task"], "kind": "question answering", "tasks": tasks,
              "joint": bool(config.get("joint")),
              "model": {k: v for k, v in model.items() if k != "answer_word_ids"}, "training": training,
              "data": {"files": config["data"].get("files", {})},
              "results": {"test_error": {str(r["task"]): r["test_error"] for r in rows},
                          "valid_error": {str(r["task"]): r.get("valid_error") for r in rows},
                          "mean_test_error": mean["test"], "mean_valid_error": mean["valid"]},
              "paper": paper, **_provenance(config)}
    which = f"task {tasks[0]}" if len(tasks) == 1 else f"tasks {tasks[0]}-{tasks[-1]}, one model for all" if config.get(
        "joint") else f"tasks {', '.join(map(str, tasks))}"
    lines = [f"# memn2n: {config['task']} {which}", "",
             f"An End-To-End Memory Network ({PAPER}) that answers questions about a story: "
             f"{counted(model['hops'], 'hop')}, d = {model['dim']}, "
             f"memory of {counted(model['memory_size'], 'sentence')}, "
             f"{'position encoding' if model['encoding'] == 'pe' else 'bag of words'}"
             f"{', temporal encoding' if model.get('temporal') else ''}, {model['tying']} weight tying; "
             f"trained {'with linear start' if training['linear_start'] else 'without linear start'}"
             f"{', random noise ' + str(training['random_noise']) if training['random_noise'] else ''}, "
             f"{counted(training['epochs'], 'epoch')}, seed {training['seed']}.", "",
             "## Results", "", "Test error (%), lower is better" + (f"; the paper's Table 1, column {column}:" if paper else ":"),
             "", "| task | test error | valid error |" + (" paper |" if paper else ""),
             "|---|---|---|" + ("---|" if paper else "")]
    for r in rows:
        theirs = paper["test_error"].get(r["task"]) if paper else None
        lines.append(f"| {r['task']} | {r['test_error']:.1f} | {_figure(r.get('valid_error'))} |"
                     + (f" {'' if theirs is None else theirs} |" if paper else ""))
    if len(rows) > 1:
        lines.append(f"| mean | {mean['test']:.1f} | {_figure(mean['valid'])} |"
                     + (f" {paper['mean_test_error']} |" if paper else ""))
    lines += ["", "## Use", "", "```", "memn2n predict story.txt -c path/to/this/folder",
              "memn2n eval path/to/this/folder", "memn2n visualize --hops -c path/to/this/folder", "```", "",
              *_how_made(fields)]
    return (_front_matter(fields) + "\n" + "\n".join(lines) + "\n").encode()


def lm_card(config: dict, history: list[dict], test_perplexity: float | None, finished: bool) -> bytes:
    """The card of a language model: ``history`` its epoch records so far, ``test_perplexity``
    once it has finished."""
    task, model = get_task(config["task"]), config["model"]
    generated = bool(config["data"].get("generated"))
    table_2 = task.paper_table(config["data"].get("files", {})).get((model["dim"], model["hops"], model["memory_size"]))
    paper = {"table": "Table 2", "valid_perplexity": table_2[0], "test_perplexity": table_2[1]} if table_2 else None
    last = history[-1] if history else {}
    fields = {"library_name": "memn2n", "task": config["task"], "kind": "language model",
              "model": model, "training": config["training"], "data": {"tokens": config["data"].get("tokens", {}),
                                                                        "files": config["data"].get("files", {}),
                                                                        "generated": generated},
              "results": {"epochs": len(history), "finished": finished, "valid_perplexity": last.get("valid_perplexity"),
                          "test_perplexity": test_perplexity},
              "paper": paper, **_provenance(config)}
    epochs = counted(len(history), "epoch")
    status = f"finished after {epochs}" if finished else f"in training ({epochs} done)"
    lines = [f"# memn2n: {config['task']} language model", "",
             f"An End-To-End Memory Network ({PAPER}) that predicts the next word from the "
             f"{model['memory_size']} before it: {counted(model['hops'], 'hop')}, d = {model['dim']}; {status}.", "",
             *([f"Trained on a generated stand-in for {config['task']} (`memn2n data generate {config['task']}`: "
                "sentences of the bAbI simulator), not the real corpus: its perplexities are not comparable to "
                "the paper's.", ""] if generated else []),
             "## Results", "", "| | valid perplexity | test perplexity |", "|---|---|---|",
             f"| this model | {_figure(last.get('valid_perplexity'))} | {_figure(test_perplexity)} |"]
    if paper:
        lines.append(f"| the paper's Table 2 | {paper['valid_perplexity']} | {paper['test_perplexity']} |")
    lines += ["", "## Use", "", "```", "memn2n predict prompt.txt --next 10 -c path/to/this/folder",
              "memn2n eval path/to/this/folder", "memn2n visualize --memory-positions -c path/to/this/folder", "```",
              "", *_how_made(fields)]
    return (_front_matter(fields) + "\n" + "\n".join(lines) + "\n").encode()


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _how_made(fields: dict) -> list[str]:
    made = fields["command"] or "from Python (memn2n.train)"
    at = f" at commit {fields['commit'][:12]}" if fields["commit"] else ""
    return ["## How it was made", "", f"memn2n {fields['memn2n_version']}{at}, {fields['created']}: `{made}`.",
            "Every setting is in this file's front matter and in config.json."]
