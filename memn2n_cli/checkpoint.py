"""Run directories: everything `eval`, `predict`, `visualize` and `serve` need, without the data;
the one module that writes and reads them, for both kinds of task (file names, the config, the
manifest, training progress, where a run's data is).

A model directory holds ``model.safetensors`` (weights), ``config.json`` (its ``format``, the
task, the ``model`` and ``training`` configs, the data files and their checksums; `new_run_config`),
``vocab.json`` (words, and answers for question answering) and ``metrics.json`` (a language
model's: its ``state.json`` and ``generator.safetensors`` instead, to resume exactly). ``--task all`` without
``--joint`` trains one model per task: the run directory then holds one model directory per task
(``qa1/`` ... ``qa20/``) and the summary. Every file is written under a temporary name and
renamed into place. No pickle anywhere.

``format`` is the schema's version. A config is rebuilt with `config_from`: a setting this
version does not know, or one it needs that the run lacks, is a one-line error naming it; a
setting added since the run was written takes its default.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import MISSING, fields
from datetime import datetime, timezone
from pathlib import Path

import safetensors.torch
from safetensors.torch import save as safetensors_bytes  # bytes of a .safetensors file, no pickle

from memn2n_cli import __version__
from memn2n_cli.configs import LMConfig, ModelConfig
from memn2n_cli.errors import ConfigError, UserError
from memn2n_cli.model import MemN2N, MemN2NLM
from memn2n_cli.qa.restarts import Progress
from tasks import get_task
from tasks.qa import Vocabulary

MODEL_FILE, CONFIG_FILE, VOCAB_FILE, METRICS_FILE = "model.safetensors", "config.json", "vocab.json", "metrics.json"
STATE_FILE, GENERATOR_FILE = "state.json", "generator.safetensors"  # a language model's place in its recipe
MANIFEST_FILE = "manifest.json"  # written last: each file's SHA-256
PROGRESS_FILE = "progress.safetensors"  # a question-answering model in training: removed once it is complete
FORMAT = "memn2n-run/1"
# A joint bAbI model that comes with memn2n (all 20 tasks, PE LS RN, best of 10: BENCHMARKS.md,
# "The bundled joint model"), for `predict`, `visualize` and `serve` before any training; wherever a
# run is named, BUNDLED_NAME names it (`run_directory`).
BUNDLED_RUN = Path(__file__).parent / "pretrained" / "babi-joint"  # package data of memn2n_cli
BUNDLED_NAME = "bundled"
_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(temporary_path)``, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; a run is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_checksums(paths: list[Path]) -> dict[str, str]:
    """The SHA-256 of each data file, by name: what config.json records of a run's data."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def json_bytes(data: dict) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def write_json(path: Path, data: dict) -> None:
    write_files(path.parent, {path.name: json_bytes(data)})


def check_new_run(out: Path, resume: bool) -> None:
    """A new run goes into an empty or new folder: a UserError for one that holds files, unless resumed."""
    if not resume and out.exists() and any(out.iterdir()):
        raise UserError("already holds files; choose another output folder, or resume it", out)


def write_run(directory: Path, files: dict[str, bytes], finished: bool = False) -> None:
    """A model directory's files, each written aside and renamed into place, then manifest.json
    with every file's SHA-256, last: a reader checks the files against it (`check_manifest`), so
    a directory caught between two renames, or damaged since, is refused rather than read as a
    mixture. Temporary files left by a writer that was killed are removed first; a ``finished``
    question-answering model's training progress (`write_progress`) after."""
    for stale in directory.glob(".*.tmp") if directory.is_dir() else []:
        stale.unlink(missing_ok=True)
    write_files(directory, files)
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    write_files(directory, {MANIFEST_FILE: json_bytes({"format": FORMAT, "sha256": digests})})
    if finished:
        (directory / PROGRESS_FILE).unlink(missing_ok=True)


def write_progress(directory: Path, progress: Progress, settings: dict) -> None:
    """Where a question-answering model's training is, after an epoch, in one file written aside
    and renamed into place; ``settings`` (task, tasks, options) say what it is training."""
    tensors = {f"params.{name}": value for name, value in progress.params.items()}
    tensors |= {f"generator.{r}": state for r, state in enumerate(progress.generators)}
    metadata = {"format": FORMAT, "settings": json.dumps(settings), "schedules": json.dumps(progress.schedules),
                "histories": json.dumps(progress.histories)}
    write_files(directory, {PROGRESS_FILE: safetensors_bytes(tensors, metadata=metadata)})


def read_progress(directory: Path, settings: dict) -> Progress | None:
    """The training progress saved in ``directory`` (None when there is none); a UserError when it
    is the progress of other settings, or damaged."""
    path = directory / PROGRESS_FILE
    if not path.exists():
        return None
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            metadata, tensors = f.metadata() or {}, {name: f.get_tensor(name) for name in f.keys()}
        saved = json.loads(metadata["settings"])
        schedules, histories = json.loads(metadata["schedules"]), json.loads(metadata["histories"])
    except Exception as e:  # safetensors' and json's own errors for a damaged file
        raise UserError(f"corrupt training progress: {str(e).splitlines()[0] if str(e) else type(e).__name__}", path) from None
    if saved != json.loads(json.dumps(settings)):
        raise UserError("holds the training of a model with other options or tasks; resume with the same ones", directory)
    params = {name.removeprefix("params."): value for name, value in tensors.items() if name.startswith("params.")}
    generators = [tensors[f"generator.{r}"] for r in range(len(schedules))]
    return Progress(params, generators, schedules, histories)


def check_manifest(directory: Path) -> None:
    """A UserError unless every file manifest.json names is there with its SHA-256 (a run written
    before manifests has none, and is read as it is)."""
    path = directory / MANIFEST_FILE
    if not path.exists():
        return
    digests = read_json(path).get("sha256")
    if not isinstance(digests, dict) or not all(isinstance(d, str) and Path(n).name == n for n, d in digests.items()):
        raise UserError("corrupt manifest", path)
    for name, digest in digests.items():
        try:
            content = (directory / name).read_bytes()
        except OSError:
            raise UserError(f"{name} is missing: the run is incomplete (interrupted while saving?)", directory) from None
        if hashlib.sha256(content).hexdigest() != digest:
            raise UserError(f"{name} is not the file manifest.json names: damaged, or a save was interrupted", directory)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError("missing file; not a complete memn2n run", path) from None
    except OSError as e:  # a folder where the file should be, no permission
        raise UserError(f"cannot read: {e.strerror}", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"corrupt JSON: {e}", path) from None
    if not isinstance(data, dict):
        raise UserError("corrupt JSON: expected an object", path)
    return data


def read_config(directory: Path) -> dict:
    """A model directory's config.json, checked to be a memn2n run of this format whose files are
    those its manifest names."""
    config = read_json(directory / CONFIG_FILE)
    if config.get("format") != FORMAT:
        raise UserError(f"not a memn2n run (format {config.get('format')!r}, expected {FORMAT!r})", directory / CONFIG_FILE)
    check_manifest(directory)
    return config


def config_from(cls: type, data, section: str, path: Path):
    """``cls`` (a config dataclass) rebuilt from ``data``, the ``section`` settings read from
    ``path``; a UserError naming the setting for one this version does not know or one the run
    lacks that has no default, or a value the config refuses."""
    if not isinstance(data, dict):
        raise UserError(f"no {section!r} settings", path)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(data.keys() - known.keys())
    if unknown:
        raise UserError(f"unknown {section} setting {unknown[0]!r} (written by another version of memn2n?)", path)
    missing = [name for name, f in known.items() if name not in data and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise UserError(f"{section} setting {missing[0]!r} is missing", path)
    try:
        return cls(**data)
    except (ConfigError, TypeError, ValueError) as e:
        raise UserError(f"{section} settings: {e}", path) from None


def new_run_config(task: str, model: dict, training: dict, data: dict, **more) -> dict:
    """config.json of a run being written, either kind: the format, the task, the model's and the
    recipe's settings, the data (its folder and what identifies it), when and by which version."""
    return {"format": FORMAT, "task": task, **more, "training": training, "model": model, "data": data,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "memn2n_version": __version__}


def weights_bytes(model) -> bytes:
    return safetensors_bytes({name: value.detach().cpu() for name, value in model.state_dict().items()},
                             metadata={"format": FORMAT})


def model_files(model: MemN2N, config: dict, vocab: Vocabulary, metrics: dict) -> dict[str, bytes]:
    """A question-answering model directory's files as bytes, config.json last: a directory with a
    config.json is complete."""
    return {MODEL_FILE: weights_bytes(model), VOCAB_FILE: json_bytes(vocab.to_json()), METRICS_FILE: json_bytes(metrics),
            CONFIG_FILE: json_bytes(config)}


def language_model_files(model: MemN2NLM, config: dict, words: list[str], state: dict, generator) -> dict[str, bytes]:
    """A language-model run's files as bytes (``state``: where it is in its recipe; ``generator``:
    its random state), config.json last."""
    return {MODEL_FILE: weights_bytes(model), GENERATOR_FILE: safetensors_bytes({"state": generator}),
            STATE_FILE: json_bytes(state), VOCAB_FILE: json_bytes({"words": words}), CONFIG_FILE: json_bytes(config)}


def read_lm_state(directory: Path) -> tuple[dict, object]:
    """A language-model run's place in its recipe (state.json) and its random generator's state."""
    state = read_json(directory / STATE_FILE)
    try:
        generator = safetensors.torch.load_file(directory / GENERATOR_FILE)["state"]
    except Exception as e:  # safetensors' and torch's own errors for a damaged or foreign file
        raise UserError(f"corrupt random-generator state: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                        directory / GENERATOR_FILE) from None
    return state, generator


def load_language_model(directory: Path) -> tuple[MemN2NLM, dict, list[str]]:
    """(model, config, words) of a language-model run; UserError when it is missing or corrupt."""
    config = read_config(directory)
    if get_task(str(config.get("task")), "lm") is None:
        raise UserError(f"is a {config.get('task')!r} run; this takes a language-model run", directory)
    model = MemN2NLM(config_from(LMConfig, config.get("model"), "model", directory / CONFIG_FILE))
    if (directory / MODEL_FILE).is_file():
        check_float32(directory / MODEL_FILE)
    try:
        words = read_json(directory / VOCAB_FILE)["words"]
        safetensors.torch.load_model(model, directory / MODEL_FILE)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"corrupt or mismatched language-model run: {str(e).splitlines()[0]}", directory) from None
    except Exception as e:  # safetensors' own errors for truncated files
        raise UserError(f"corrupt weights file: {e}", directory / MODEL_FILE) from None
    if not isinstance(words, list) or len(words) != model.config.vocab_size:
        raise UserError("vocab.json does not match config.json", directory)
    check_finite(model, directory / MODEL_FILE)
    return model, config, words


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Write each file under a temporary name and rename it into place, in order."""
    for name, content in files.items():
        _atomic_write(directory / name, lambda tmp: Path(tmp).write_bytes(content))


def refuse_other_kinds(task: str, run: Path) -> None:
    """A UserError for a run of ``task`` when it is not a question-answering task."""
    if get_task(task, "qa") is None:
        raise UserError(f"is a {task!r} run; this takes a question-answering run", run)


def load_model(directory: Path) -> tuple[MemN2N, dict, Vocabulary]:
    """(model, config, vocabulary) of a model directory; UserError when missing, corrupt or mismatched."""
    if not directory.is_dir():
        raise UserError("run directory not found", directory)
    config = read_config(directory)
    refuse_other_kinds(str(config.get("task")), directory)
    for key, kind in (("tasks", list), ("training", dict), ("data", dict)):
        if not isinstance(config.get(key), kind):
            raise UserError(f"no {key!r} {kind.__name__} in config.json", directory / CONFIG_FILE)
    if not all(isinstance(t, int) for t in config["tasks"]) or not isinstance(config["data"].get("dir", ""), str):
        raise UserError("config.json: 'tasks' must be task numbers and 'data' name the data's folder", directory / CONFIG_FILE)
    model = MemN2N(config_from(ModelConfig, config.get("model"), "model", directory / CONFIG_FILE))
    try:
        vocab = Vocabulary.from_json(read_json(directory / VOCAB_FILE))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"corrupt vocabulary: {e}", directory / VOCAB_FILE) from None
    if model.config.vocab_size != len(vocab.words) or len(model.config.answer_word_ids) != len(vocab.answers):
        raise UserError("vocab.json does not match config.json", directory)
    weights = directory / MODEL_FILE
    if not weights.is_file():
        raise UserError("missing file; not a complete memn2n run", weights)
    check_float32(weights)
    try:
        missing, unexpected = safetensors.torch.load_model(model, weights, strict=False)
    except RuntimeError as e:  # shapes that do not fit the config
        raise UserError(f"weights do not match config.json: {str(e).splitlines()[0]}", weights) from None
    except Exception as e:  # safetensors raises its own error types for truncated or garbled files
        raise UserError(f"corrupt weights file: {e}", weights) from None
    if missing or unexpected:
        raise UserError(f"weights do not match config.json (missing {sorted(missing)}, unexpected {sorted(unexpected)})", weights)
    check_finite(model, weights)
    model.eval()
    return model, config, vocab


def check_float32(weights: Path) -> None:
    """A UserError for a weights file whose tensors are not float32 (loading would cast them)."""
    try:
        with safetensors.safe_open(str(weights), "pt") as f:
            other = sorted(f"{name} ({f.get_slice(name).get_dtype()})" for name in f.keys()
                           if f.get_slice(name).get_dtype() != "F32")
    except Exception as e:  # safetensors' own errors for a truncated or garbled file
        raise UserError(f"corrupt weights file: {e}", weights) from None
    if other:
        raise UserError(f"weights are not float32: {', '.join(other)}", weights)


def check_finite(model, weights: Path) -> None:
    """A UserError for weights holding NaN or infinity: they would answer garbage, silently."""
    bad = [name for name, value in model.state_dict().items() if value.is_floating_point() and not value.isfinite().all()]
    if bad:
        raise UserError(f"weights hold NaN or infinity ({', '.join(bad)})", weights)


def run_directory(run: Path) -> Path:
    """The folder a run's name stands for: the folder itself, or, for ``bundled`` where the working
    folder holds nothing of that name, the bundled model (`-c bundled`, `memn2n.load("bundled")`)."""
    return BUNDLED_RUN if run == Path(BUNDLED_NAME) and not run.exists() else run


def model_dirs(run: Path) -> list[Path]:
    """The model directories of a run (``bundled``: the bundled model's, see `run_directory`): the
    run itself, or its per-task subdirectories in task order."""
    run = run_directory(run)
    if not run.is_dir():
        raise UserError("run directory not found", run)
    if (run / CONFIG_FILE).exists():
        return [run]
    found = sorted((d for d in run.iterdir() if (d / CONFIG_FILE).exists()), key=lambda d: (len(d.name), d.name))
    if not found:
        raise UserError("not a memn2n run: no config.json in it or in its subdirectories", run)
    return found


def is_finished(run: Path) -> bool:
    """Whether ``run`` is finished, so that it may answer when no run is named: a model directory
    (its config.json is written once the model is complete; a language model's at every checkpoint,
    each a model to use), or a run of one model per task whose summary, metrics.json, is there:
    it is written after the last model, and a run stopped half-way has none."""
    return (run / CONFIG_FILE).is_file() or (run / METRICS_FILE).is_file()


def run_task(run: Path) -> str:
    """The name of the task a run was trained on (of its first model, for a run of one model per task)."""
    return str(read_config(model_dirs(run)[0]).get("task", ""))


def run_data_dir(config: dict, given: Path | None) -> Path | None:
    """Where a run's data is read from (eval, visualize, serve): ``given`` (``--data-dir``), else
    the folder the run was trained on while it is still there, else None: where the task keeps
    its data (its own ``resolve_data_dir``), as for a run trained on another machine or a shipped
    one, which records no folder (`forget_data_dir`)."""
    if given is not None:
        return given
    recorded = Path(config.get("data", {}).get("dir") or "")
    return recorded if str(recorded) not in ("", ".") and recorded.is_dir() else None


def forget_data_dir(directory: Path) -> None:
    """Drop the data folder a model directory records (config.json's data.dir, an absolute path
    of the machine it was trained on) and rewrite its manifest: a model that is shipped, as the
    bundled one is, records no machine's path and finds its data as every command does."""
    config = read_config(directory)
    config["data"].pop("dir", None)
    files = {name: (directory / name).read_bytes() for name in read_json(directory / MANIFEST_FILE)["sha256"]}
    write_run(directory, {**files, CONFIG_FILE: json_bytes(config)})
