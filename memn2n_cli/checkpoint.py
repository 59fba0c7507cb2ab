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

A run directory has one writer at a time (`writing`: a lock on ``.memn2n.lock`` for the whole of
training or resuming). A run's files are read as `read_file` reads them, so that a damaged or
hostile folder is a one-line error, never a hang or an allocation of its own choosing: regular
files only (no FIFO, device or link out of the folder), each of a bounded size (the weights by
the parameter count of the model its config describes), JSON of bounded depth, every field of
its type, and the model's size bounded as a whole (MAX_PARAMETERS) before it is built.

``format`` is the schema's version. A config is rebuilt with `config_from`: a setting this
version does not know, or one it needs that the run lacks, is a one-line error naming it; a
setting added since the run was written takes its default.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shlex
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import MISSING, fields
from datetime import datetime, timezone
from pathlib import Path

import safetensors.torch
import torch
from safetensors.torch import save as safetensors_bytes  # bytes of a .safetensors file, no pickle

from memn2n_cli import __version__
from memn2n_cli.configs import MAX_PARAMETERS, LMConfig, ModelConfig, TrainConfig
from memn2n_cli.download import sha256_file
from memn2n_cli.errors import FULL_DISK, ArgumentError, ConfigError, DiskFull, UserError, not_a
from memn2n_cli.model import MemN2N, MemN2NLM, check_size
from memn2n_cli.qa.restarts import Progress
from memn2n_cli.qa.training import Schedule
from tasks import get_task
from tasks.qa import Vocabulary

MODEL_FILE, CONFIG_FILE, VOCAB_FILE, METRICS_FILE = "model.safetensors", "config.json", "vocab.json", "metrics.json"
STATE_FILE, GENERATOR_FILE = "state.json", "generator.safetensors"  # a language model's place in its recipe
MANIFEST_FILE = "manifest.json"  # written last: each file's SHA-256
PROGRESS_FILE = "progress.safetensors"  # a question-answering model in training: removed once it is complete
LOCK_FILE = ".memn2n.lock"  # while a process writes the folder: its id and command line (`writing`)
RENAMES_FILE = ".memn2n.renames.json"  # while `write_files` renames several files into place: which temporary is which
FORMAT = "memn2n-run/1"
# A joint bAbI model that comes with memn2n (all 20 tasks, PE LS RN, best of 10: BENCHMARKS.md,
# "The bundled joint model"), for `predict`, `visualize` and `serve` before any training; wherever a
# run is named, BUNDLED_NAME names it (`run_directory`).
BUNDLED_RUN = Path(__file__).parent / "pretrained" / "babi-joint"  # package data of memn2n_cli
BUNDLED_NAME = "bundled"
RUNS_DIR = Path("checkpoints")  # where `train` writes a run by default, and where commands look for one
_UMASK = os.umask(0)
os.umask(_UMASK)

# What a run's files may be, read before anything is built from them (`read_file`, `read_json`):
MAX_TEXT_BYTES = 64 * 2**20  # JSON and text files: text8's vocabulary is 1 MB, a long history a few
MAX_JSON_DEPTH = 32  # config.json nests 4 deep, a sweep's results 6
HEADER_BYTES = 2**20  # a .safetensors file: its tensors' bytes and a header of their names and shapes
MAX_WEIGHTS_BYTES = 4 * MAX_PARAMETERS + HEADER_BYTES  # a weights file, whatever its config says
MAX_GENERATOR_BYTES = HEADER_BYTES  # a random generator's state: 5 KB on the CPU
_HELD: dict[Path, int] = {}  # the folders this process writes (`writing`), each with its lock's descriptor


def _write_all(fd: int, content: bytes) -> None:
    """Write ``content`` to ``fd`` whole (os.write may write less than asked)."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]


def _write_aside(path: Path, content: bytes) -> str:
    """``content`` in a new temporary file beside ``path``: its name. An OSError (a full disk, a
    folder that cannot be written) names ``path`` and leaves no temporary file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, e.strerror, e.filename if e.filename == str(path.parent) else str(path)) from None
    try:
        _write_all(fd, content)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it private; a run is an ordinary file
    except OSError as e:
        os.close(fd)
        os.unlink(tmp)
        raise type(e)(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    return tmp


def file_checksums(paths: list[Path]) -> dict[str, str]:
    """The SHA-256 of each data file, by name: what config.json records of a run's data (read a
    block at a time: Text8 is 100 MB)."""
    return {p.name: sha256_file(p) for p in paths}


def data_record(data_dir: Path, files: list[Path]) -> dict:
    """What a run records of its data: the folder, and each file's SHA-256 (`file_checksums`)."""
    return {"dir": str(data_dir.resolve()), "files": file_checksums(files)}


def check_same_data(recorded, data: dict, run: Path) -> None:
    """An ArgumentError (``data_dir``) unless ``data`` (`data_record`) holds the files a run being
    resumed recorded (``recorded``, its own record; a run saved before it recorded its data, or a
    damaged record, is not checked here): it goes on on the data it started on, not on other files."""
    if isinstance(recorded, dict) and isinstance(recorded.get("files"), dict) and recorded["files"] != data["files"]:
        raise ArgumentError("data_dir", f"was trained on other data files than {data['dir']}'s: resume it with "
                            f"{{}} {recorded.get('dir')}", run)


def json_bytes(data: dict, standard: bool = False) -> bytes:
    """``data`` as indented JSON: as Python writes it (NaN, Infinity) for the files memn2n alone
    reads back, or ``standard`` (`finite_or_null`) for those people and other programs read."""
    return (json.dumps(finite_or_null(data) if standard else data, indent=2, allow_nan=not standard) + "\n").encode()


def finite_or_null(value):
    """``value`` with every number that is not finite (a diverged run's perplexity) as None, so
    that it is standard JSON: NaN and Infinity, which Python writes, strict parsers refuse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(v) for key, v in value.items()}
    return [finite_or_null(v) for v in value] if isinstance(value, (list, tuple)) else value


def write_json(path: Path, data: dict) -> None:
    write_files(path.parent, {path.name: json_bytes(data)})


def check_new_run(out: Path, resume: bool) -> None:
    """A new run goes into an empty or new folder: a UserError for one that holds files, unless
    resumed, and for one that another process is writing, resumed or not."""
    writer = live_writer(out)
    if writer is not None:
        raise UserError(f"is being written by {writer}: wait for it to end, or choose another output folder", out)
    if not resume and out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise UserError("already holds files; choose another output folder, or resume it", out)


def live_writer(directory: Path) -> str | None:
    """The process that `writing` says writes ``directory`` ("process 1234 (memn2n train ...)"),
    while it is alive; None when there is none. A hint for a message: the lock itself decides."""
    try:
        held = (directory / LOCK_FILE).read_text(errors="replace")
    except OSError:  # no lock file: nobody writes it (or not a folder: the caller says so)
        return None
    pid, _, command = held.partition(" ")
    if not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:  # a writer killed before it could remove its lock file
        return None
    except OSError:  # alive, another user's
        pass
    return f"process {pid}" + (f" ({command.strip()})" if command.strip() else "")


@contextmanager
def writing(directory: Path, resume: str):
    """Hold ``directory`` as its one writer for the block (training or resuming a run, a sweep): an
    exclusive lock (flock) on its LOCK_FILE, which names this process; a UserError naming the
    other process at once when one holds it. Temporary files left by a writer that was killed are
    removed once it is held; the lock file when it is released. A disk that fills inside the block
    is a DiskFull saying how to go on (``resume``): every file is written aside and renamed into
    place, so the run keeps its last checkpoint. Re-entrant within a process."""
    directory = Path(directory)
    key = directory.resolve()
    if key in _HELD:
        yield
        return
    created = not directory.exists()
    fd = _lock(directory)
    _HELD[key] = fd
    try:
        for folder in [directory, *(d for d in directory.iterdir() if d.is_dir() and not (d / LOCK_FILE).exists())]:
            _remove_stale(folder)
        yield
    except OSError as e:
        if e.errno in FULL_DISK and not isinstance(e, DiskFull):
            raise DiskFull(e, directory, resume) from None
        raise
    finally:
        del _HELD[key]
        try:
            os.unlink(directory / LOCK_FILE)  # still ours: whoever opens it waits for the lock, then sees it gone
        except OSError:
            pass
        os.close(fd)
        if created:
            try:
                directory.rmdir()  # a run that failed before writing anything leaves no folder behind
            except OSError:
                pass


def _lock(directory: Path) -> int:
    """The descriptor of ``directory``'s lock file, locked for this process (see `writing`)."""
    path = directory / LOCK_FILE
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as e:  # a folder that cannot be written: named, as the user gave it
            raise type(e)(e.errno, e.strerror, str(directory)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            pid, _, command = holder.partition(" ")
            who = f"process {pid}" + (f" ({command.strip()})" if command.strip() else "") if pid.isdigit() else "another process"
            raise UserError(f"is being written by {who}: wait for it to end, or choose another folder", directory) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its writer ended and removed it while we waited to lock it: lock the next one
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {shlex.join(sys.argv)[:1000]}\n".encode(errors="replace"))
    return fd


def _remove_stale(directory: Path) -> None:
    """Finish the renames of a writer killed inside `write_files`, then remove the temporary files
    it left in ``directory``: only by the process that holds it (or a folder above it), and none
    where another holds it."""
    held = any(folder in _HELD for folder in [directory.resolve(), *directory.resolve().parents])
    if not held or (directory / LOCK_FILE).exists() and directory.resolve() not in _HELD:
        return
    if (directory / RENAMES_FILE).exists():
        _rename(directory, _read_renames(directory / RENAMES_FILE))
        (directory / RENAMES_FILE).unlink()
    for stale in directory.glob(".*.tmp") if directory.is_dir() else []:
        stale.unlink(missing_ok=True)


def write_run(directory: Path, files: dict[str, bytes], finished: bool = False) -> None:
    """A model directory's files, each written aside, then renamed into place with manifest.json
    last, which holds every file's SHA-256: a reader checks the files against it (`check_manifest`),
    so a directory caught between two renames, or damaged since, is refused rather than read as a
    mixture; a disk that fills while they are written aside leaves the directory as it was, and
    renames cut off by a kill are finished by the folder's next writer (`write_files`, ``listed``).
    Temporary files left by a writer that was killed are removed first (by the folder's writer,
    `writing`); a ``finished`` question-answering model's training progress (`write_progress`) after."""
    _remove_stale(directory)
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    write_files(directory, {**files, MANIFEST_FILE: json_bytes({"format": FORMAT, "sha256": digests})}, listed=True)
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


def read_progress(directory: Path, settings: dict, model: MemN2N) -> Progress | None:
    """The training progress saved in ``directory`` (None when there is none) of ``model`` (as built
    for these settings); a UserError when it is the progress of other settings, or damaged."""
    path = directory / PROGRESS_FILE
    if not path.exists() and not path.is_symlink():
        return None
    parameters = sum(p.numel() for p in model.parameters())
    tensors, metadata = read_tensors(path, 4 * parameters + MAX_GENERATOR_BYTES + HEADER_BYTES, "corrupt training progress")
    try:
        saved = json_value(metadata["settings"])
        schedules, histories = json_value(metadata["schedules"]), json_value(metadata["histories"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"corrupt training progress: {type(e).__name__} {e}", path) from None
    if not isinstance(saved, dict):
        raise UserError("corrupt training progress: its settings are not an object", path)
    wanted = json.loads(json.dumps(settings))
    recorded = saved.pop("data", None)  # progress saved before it recorded its data has none
    if saved != {k: v for k, v in wanted.items() if k != "data"}:
        raise UserError("holds the training of a model with other options or tasks; resume with the same ones", directory)
    check_same_data(recorded, wanted["data"], directory)
    params = {name.removeprefix("params."): value for name, value in tensors.items() if name.startswith("params.")}
    expected = {name: ((1, *p.shape), p.dtype) for name, p in model.named_parameters()}  # one restart's
    keys = set(Schedule(TrainConfig()).state())
    if ({name: (tuple(value.shape), value.dtype) for name, value in params.items()} != expected
            or not isinstance(schedules, list) or not isinstance(histories, list) or len(histories) != len(schedules)
            or not all(isinstance(s, dict) and set(s) == keys and all(v is None or isinstance(v, (int, float)) for v in s.values())
                       for s in schedules)
            or not all(isinstance(h, list) and all(isinstance(record, dict) for record in h) for h in histories)
            or not all(_generator_state(tensors.get(f"generator.{r}")) for r in range(len(schedules)))):
        raise UserError("corrupt training progress: not the progress of this model (its tensors, schedules or "
                        "histories are not what it saves)", path)
    generators = [tensors[f"generator.{r}"] for r in range(len(schedules))]
    return Progress(params, generators, schedules, histories)


def training_settings(directory: Path) -> dict:
    """What the question-answering model in training in ``directory`` is (its task, tasks and
    options: `write_progress`'s settings), read from its progress file's header alone; a UserError
    for a damaged one."""
    path = directory / PROGRESS_FILE
    with open_file(path, MAX_WEIGHTS_BYTES + MAX_GENERATOR_BYTES) as f:
        size = int.from_bytes(f.read(8), "little")
        try:
            if not 0 < size <= HEADER_BYTES:
                raise ValueError(f"a header of {size} bytes")
            settings = json_value(json_value(f.read(size))["__metadata__"]["settings"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"corrupt training progress: {type(e).__name__} {e}", path) from None
    if not isinstance(settings, dict) or not isinstance(settings.get("task"), str):
        raise UserError("corrupt training progress: its settings name no task", path)
    return settings


def _generator_state(state) -> bool:
    """Whether ``state`` is a state that torch.Generator().set_state takes."""
    like = torch.Generator().get_state()
    return isinstance(state, torch.Tensor) and state.dtype == like.dtype and state.shape == like.shape


def check_manifest(directory: Path) -> None:
    """A UserError unless every file manifest.json names is there with its SHA-256 (a run written
    before manifests has none, and is read as it is). Each is read as `read_file` reads, a chunk
    at a time."""
    path = directory / MANIFEST_FILE
    if not path.exists() and not path.is_symlink():
        return
    digests = read_json(path).get("sha256")
    if not isinstance(digests, dict) or not all(isinstance(d, str) and Path(n).name == n for n, d in digests.items()):
        raise UserError("corrupt manifest", path)
    for name, digest in digests.items():
        if not (directory / name).exists() and not (directory / name).is_symlink():
            raise UserError(f"{name} is missing: the run is incomplete (interrupted while saving?)", directory)
        sha = hashlib.sha256()
        with open_file(directory / name, size_limit(name)) as f:
            while chunk := f.read(2**20):
                sha.update(chunk)
        if sha.hexdigest() != digest:
            raise UserError(f"{name} is not the file manifest.json names: damaged, or a save was interrupted", directory)


def size_limit(name: str) -> int:
    """The most bytes a run's file of this name may hold, whatever its config says."""
    return MAX_WEIGHTS_BYTES if name.endswith(".safetensors") else MAX_TEXT_BYTES


@contextmanager
def open_file(path: Path, limit: int):
    """A run's file ``path``, open for reading: a UserError, before a byte is read, for one that
    is missing, is not a regular file (a folder, a FIFO, whose reading would wait for ever, a
    device such as /dev/zero), is a link to a file outside its folder, or holds more than
    ``limit`` bytes."""
    try:
        if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
            raise UserError("is a link to a file outside its folder; a run's files are its own", path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens without waiting for a writer
    except FileNotFoundError:
        raise UserError("missing file; not a complete memn2n run", path) from None
    except (OSError, RuntimeError) as e:  # no permission, a loop of links (RuntimeError from resolve)
        raise UserError(f"cannot read: {getattr(e, 'strerror', None) or e}", path) from None
    mode, size = (info := os.fstat(fd)).st_mode, info.st_size
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
        raise UserError(f"cannot read: {kind}, not a regular file", path)
    if size > limit:
        os.close(fd)
        raise UserError(f"holds {size:,} bytes, more than the {limit:,} it may", path)
    with os.fdopen(fd, "rb") as f:
        yield _Bounded(f, limit, path, size)


class _Bounded:
    """A file read no further than its limit (it may grow while it is read); ``size``: its size
    when it was opened."""

    def __init__(self, f, limit: int, path: Path, size: int):
        self.f, self.left, self.path, self.size = f, limit, path, size

    def read(self, n: int) -> bytes:
        chunk = self.f.read(min(n, self.left + 1))
        self.left -= len(chunk)
        if self.left < 0:
            raise UserError("grew past the bytes it may hold while it was read", self.path)
        return chunk


def read_file(path: Path, limit: int) -> bytes:
    """The bytes of a run's file, read as `open_file` allows."""
    with open_file(path, limit) as f:
        return f.read(limit + 1)


def json_value(text: str | bytes):
    """``json.loads(text)``, nesting deeper than MAX_JSON_DEPTH refused as malformed JSON is (a
    ValueError): no RecursionError, here or in whatever walks the value later."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep")
            stack.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return value


def read_json(path: Path) -> dict:
    """A run's JSON file (config, vocabulary, metrics, state, a sweep's results), an object, read
    as `open_file` allows; a UserError naming what is wrong with it."""
    try:
        data = json_value(read_file(path, MAX_TEXT_BYTES))
    except ValueError as e:  # malformed, not UTF-8, nested too deep, an integer of 5,000 digits
        raise UserError(f"corrupt JSON: {e}", path) from None
    if not isinstance(data, dict):
        raise UserError("corrupt JSON: expected an object", path)
    return data


def read_tensors(path: Path, limit: int, what: str, float32: bool = False) -> tuple[dict, dict]:
    """The tensors and the metadata of a run's .safetensors file of at most ``limit`` bytes, read
    as `open_file` allows; a UserError starting with ``what`` for a damaged one and, with
    ``float32``, for tensors of another type (loading them would cast them)."""
    data = read_file(path, limit)
    try:
        tensors = safetensors.torch.load(data)  # the safetensors format parsed from bytes: no pickle
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])  # checked by load
    except Exception as e:  # safetensors' own errors for a truncated or garbled file
        raise UserError(f"{what}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", path) from None
    metadata = header.pop("__metadata__", None) or {}
    other = sorted(f"{name} ({entry['dtype']})" for name, entry in header.items() if entry["dtype"] != "F32")
    if float32 and other:
        raise UserError(f"weights are not float32: {', '.join(other)}", path)
    return tensors, metadata


def read_config(directory: Path) -> dict:
    """A model directory's config.json, checked to be a memn2n run of this format whose files are
    those its manifest names."""
    config = read_json(directory / CONFIG_FILE)
    if config.get("format") != FORMAT:
        raise UserError(f"not a memn2n run (format {str(config.get('format'))[:40]!r}, expected {FORMAT!r})",
                        directory / CONFIG_FILE)
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
    tensors, _ = read_tensors(directory / GENERATOR_FILE, MAX_GENERATOR_BYTES, "corrupt random-generator state")
    if not _generator_state(tensors.get("state")):
        raise UserError("corrupt random-generator state: not the state of a torch generator", directory / GENERATOR_FILE)
    return state, tensors["state"]


def read_lm_files(directory: Path) -> tuple[dict, LMConfig, list[str]]:
    """(config, model config, words) of a language-model run: every check `load_language_model`
    makes short of reading the weights' values, so that nothing large is allocated for a damaged one."""
    config = read_config(directory)
    if get_task(str(config.get("task")), "lm") is None:
        raise UserError(f"is a {str(config.get('task'))[:40]!r} run; this takes a language-model run", directory)
    model_config = config_from(LMConfig, config.get("model"), "model", directory / CONFIG_FILE)
    parameters = counted(MemN2NLM, model_config, directory)
    words = read_json(directory / VOCAB_FILE).get("words")
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise UserError("corrupt vocabulary: 'words' must be a list of words", directory / VOCAB_FILE)
    if len(words) != model_config.vocab_size:
        raise UserError("vocab.json does not match config.json", directory)
    check_weights_size(directory / MODEL_FILE, parameters)
    return config, model_config, words


def load_language_model(directory: Path) -> tuple[MemN2NLM, dict, list[str]]:
    """(model, config, words) of a language-model run; UserError when it is missing or corrupt."""
    config, model_config, words = read_lm_files(directory)
    model = MemN2NLM(model_config)
    load_weights(model, directory / MODEL_FILE, 4 * MemN2NLM.parameter_count(model_config) + HEADER_BYTES)
    return model, config, words


def write_files(directory: Path, files: dict[str, bytes], listed: bool = False) -> None:
    """Write every file under a temporary name, then rename each into place, in order: a write that
    fails (a full disk) leaves the folder as it was, and no temporary file. ``listed`` (a run's
    files, `write_run`): the renames follow a list of them (RENAMES_FILE) written first, so a
    writer stopped between two renames leaves the list, and the folder's next writer finishes them
    (`_remove_stale`): the folder holds the new files, never a mixture of old and new."""
    renames: dict[str, str] = {}  # a file's name: its temporary's
    try:
        for name, content in files.items():
            renames[name] = Path(_write_aside(directory / name, content)).name
        if listed:
            write_files(directory, {RENAMES_FILE: json_bytes(renames)})
    except BaseException:
        for tmp in renames.values():
            (directory / tmp).unlink(missing_ok=True)
        raise
    try:
        _rename(directory, renames)
    except BaseException:
        if not listed:  # a listed save's temporaries stay: the folder's next writer renames them
            for tmp in renames.values():
                (directory / tmp).unlink(missing_ok=True)
        raise
    if listed:
        (directory / RENAMES_FILE).unlink()


def _rename(directory: Path, renames: dict[str, str]) -> None:
    """Rename each of ``renames``' temporaries still there into place (`write_files`)."""
    for name, tmp in renames.items():
        if (directory / tmp).exists():
            os.replace(directory / tmp, directory / name)


def _read_renames(path: Path) -> dict[str, str]:
    """The renames a killed writer left (`write_files`): each a file of the run (a name of the
    folder's own, not hidden like its lock) and a temporary of that file's, or a UserError."""
    renames = read_json(path)
    if not all(isinstance(t, str) and n and not n.startswith(".") and Path(n).name == n and Path(t).name == t
               and t.startswith(f".{n}.") and t.endswith(".tmp") for n, t in renames.items()):
        raise UserError("corrupt list of renames", path)
    return renames


def refuse_other_kinds(task: str, run: Path) -> None:
    """A UserError for a run of ``task`` when it is not a question-answering task."""
    if get_task(task, "qa") is None:
        raise UserError(f"is a {task!r} run; this takes a question-answering run", run)


def counted(model_class, model_config, directory: Path) -> int:
    """The weights ``model_class(model_config)`` would hold; a UserError past MAX_PARAMETERS."""
    try:
        return check_size(model_class, model_config)
    except ConfigError as e:
        raise UserError(f"model settings: {e}", directory / CONFIG_FILE) from None


def read_model_files(directory: Path) -> tuple[dict, ModelConfig, Vocabulary]:
    """(config, model config, vocabulary) of a question-answering model directory: every check
    `load_model` makes short of reading the weights' values (what `serve` checks of each run it
    lists), so that nothing large is allocated for a damaged one."""
    if not directory.is_dir():
        raise not_a(directory, "run directory")
    config = read_config(directory)
    refuse_other_kinds(str(config.get("task")), directory)
    for key, kind in (("tasks", list), ("training", dict), ("data", dict)):
        if not isinstance(config.get(key), kind):
            raise UserError(f"no {key!r} {kind.__name__} in config.json", directory / CONFIG_FILE)
    files = config["data"].get("files")  # each data file's checksum, which `eval` compares
    if (not all(isinstance(t, int) and not isinstance(t, bool) for t in config["tasks"])
            or not isinstance(config["data"].get("dir", ""), str)  # the bundled model records no folder
            or not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values()))):
        raise UserError("'tasks' must be task numbers, and 'data' name the data's folder and its files' checksums",
                        directory / CONFIG_FILE)
    model_config = config_from(ModelConfig, config.get("model"), "model", directory / CONFIG_FILE)
    parameters = counted(MemN2N, model_config, directory)
    data = read_json(directory / VOCAB_FILE)
    if not all(isinstance(data.get(key), list) and all(isinstance(w, str) for w in data[key]) for key in ("words", "answers")):
        raise UserError("corrupt vocabulary: 'words' and 'answers' must be lists of words", directory / VOCAB_FILE)
    try:
        vocab = Vocabulary.from_json(data)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UserError(f"corrupt vocabulary: {e}", directory / VOCAB_FILE) from None
    if model_config.vocab_size != len(vocab.words) or len(model_config.answer_word_ids) != len(vocab.answers):
        raise UserError("vocab.json does not match config.json", directory)
    check_weights_size(directory / MODEL_FILE, parameters)
    return config, model_config, vocab


def check_weights_size(weights: Path, parameters: int) -> None:
    """A UserError unless ``weights`` is a regular file of the size a model of ``parameters``
    float32 weights takes (and a header): checked before the model is built, so that a config.json
    that asks for a large model next to small weights allocates nothing."""
    with open_file(weights, 4 * parameters + HEADER_BYTES) as f:
        if f.size < 4 * parameters:
            raise UserError(f"weights do not match config.json (a corrupt weights file, or another model's): {f.size:,} "
                            f"bytes, too few for the {parameters:,} weights (4 bytes each) of the model it describes", weights)


def load_model(directory: Path) -> tuple[MemN2N, dict, Vocabulary]:
    """(model, config, vocabulary) of a model directory; UserError when missing, corrupt or mismatched."""
    config, model_config, vocab = read_model_files(directory)
    model = MemN2N(model_config)
    load_weights(model, directory / MODEL_FILE, 4 * MemN2N.parameter_count(model_config) + HEADER_BYTES)
    model.eval()
    return model, config, vocab


def load_weights(model, weights: Path, limit: int) -> None:
    """Load ``weights`` (a file of at most ``limit`` bytes) into ``model``; a UserError for a file
    that is damaged, holds other tensors than the model's, or values that are not float32 or not
    finite."""
    tensors, _ = read_tensors(weights, limit, "corrupt weights file", float32=True)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:  # shapes that do not fit the config: "Error(s) in loading ...:", then each
        lines = str(e).splitlines()
        raise UserError(f"weights do not match config.json: {(lines[1:] or lines)[0].strip()}", weights) from None
    if missing or unexpected:
        raise UserError(f"weights do not match config.json (missing {sorted(missing)}, unexpected {sorted(unexpected)})", weights)
    check_finite(model, weights)


def check_finite(model, weights: Path) -> None:
    """A UserError for weights holding NaN or infinity: they would answer garbage, silently."""
    bad = [name for name, value in model.state_dict().items() if value.is_floating_point() and not value.isfinite().all()]
    if bad:
        raise UserError(f"weights hold NaN or infinity ({', '.join(bad)})", weights)


def run_directory(run: Path) -> Path:
    """The folder a run's name stands for: the folder itself, or, for ``bundled`` where the working
    folder holds nothing of that name, the bundled model (`-c bundled`, `memn2n.load("bundled")`)."""
    return BUNDLED_RUN if run == Path(BUNDLED_NAME) and not run.exists() else run


def is_model_dir(directory: Path, in_training: bool = False) -> bool:
    """Whether ``directory`` holds a model: a complete one (its config.json) or, with
    ``in_training``, a question-answering model not yet complete (its progress file)."""
    return (directory / CONFIG_FILE).exists() or in_training and (directory / PROGRESS_FILE).exists()


def model_dirs(run: Path, in_training: bool = False) -> list[Path]:
    """The model directories of a run (``bundled``: the bundled model's, see `run_directory`): the
    run itself, or its per-task subdirectories in task order; with ``in_training``, also those of
    question-answering models not yet complete (their progress file, no config.json yet)."""
    run = run_directory(run)
    if not run.is_dir():
        raise not_a(run, "run directory")
    if is_model_dir(run, in_training):
        return [run]
    found = sorted((d for d in run.iterdir() if is_model_dir(d, in_training)), key=lambda d: (len(d.name), d.name))
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
