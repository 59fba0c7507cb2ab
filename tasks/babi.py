"""The bAbI question-answering tasks (Weston et al. 2015), as used in Section 4 of the paper.

One file per task and split (``qaN_<name>_{train,test}.txt``), in the numbered format that
`tasks.qa` reads (an id of 1 starts a new story; a line holding a tab is a question, its answer
and the ids of its supporting facts). Each question is one example: the sentences before it in its
story (questions excluded) are the memory, the question is the query. What is bAbI's own is here:
the 20 task numbers, where the files are (and their download), and the paper's Table 1.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

from memn2n_cli.errors import ArgumentError, UserError, not_a
from tasks import qa, register_task
from tasks.qa import Question, parse_babi
from tasks.text import read_lines

TASK_IDS = range(1, 21)
DOWNLOAD_URL = "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz"
ARCHIVE_ROOT = "tasks_1-20_v1-2"  # the folder the upstream archive unpacks to
CHECKSUMS = Path(__file__).with_name("babi_v1.2.sha256")
V1_1_CHECKSUMS = Path(__file__).with_name("babi_v1.1.sha256")  # its en folder, the paper's data: task 16 differs from v1.2's
log = logging.getLogger("memn2n")


def read_file(path: Path, task: int, tokenize: qa.Tokenizer = qa.tokenize) -> list[Question]:
    """Parse one upstream file. Bad input raises UserError naming the file and line."""
    return parse_babi(read_lines(path), path, task, tokenize=tokenize)


def task_file(data_dir: Path, task: int, split: str) -> Path:
    """``qaN_<name>_<split>.txt`` (upstream) or ``qaN_<split>.txt`` (the en-valid folders)."""
    matches = sorted(data_dir.glob(f"qa{task}_*{split}.txt"))
    if not matches:
        adds = f"; `memn2n data generate babi --task {task}` adds it" if data_dir == generated_data_dir() else ""
        raise UserError(f"no file for task {task}, split {split!r} (expected qa{task}_*_{split}.txt){adds}", data_dir)
    return matches[0]


def _validation_files(data_dir: Path, task_ids: list[int]) -> list[Path]:
    """Each task's validation file, where every one of ``task_ids`` has one (the en-valid folders); else []."""
    files = [sorted(data_dir.glob(f"qa{task}_*valid.txt")) for task in task_ids]
    return [found[0] for found in files] if all(files) else []


def parse_task_ids(values: list[str], default: str = "1") -> list[int]:
    """``["1", "3"]`` -> [1, 3]; ``["all"]`` -> 1..20; ``[]`` -> ``default``."""
    ids: set[int] = set()
    for value in values or [default]:
        if value == "all":
            ids.update(TASK_IDS)
        elif value.isascii() and value.isdigit() and len(value) < 3 and int(value) in TASK_IDS:
            ids.add(int(value))
        else:
            raise UserError(f"unknown bAbI task {value!r}: use a number from 1 to 20, or 'all'")
    return sorted(ids)


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memn2n" / "babi"


def default_data_dir() -> Path:
    """Where the upstream archive is unpacked: its English 1k folder."""
    return _cache() / ARCHIVE_ROOT / "en"


def generated_data_dir() -> Path:
    """Where `memn2n data generate babi` writes when given no folder: memn2n's simulated tasks, in
    a folder of their own beside the upstream download's, never taken for the upstream files."""
    return _cache() / "generated" / "en"


ENGLISH_SIZES = {"en": "1k", "en-valid": "1k", "en-10k": "10k", "en-valid-10k": "10k"}  # upstream's folders of Table 1's data


def english_size(files: dict[str, str]) -> str | None:
    """Which of Table 1's data ``files`` (name: SHA-256, as a run records them) are: "1k" or "10k"
    where each is upstream's English file of that name, v1.1 (the paper's) or v1.2 (both sizes
    share their test files), else None: another language, the shuffled words, generated or edited
    files."""
    from memn2n_cli.download import read_checksums

    published = [(path, digest) for checksums in (V1_1_CHECKSUMS, CHECKSUMS) for path, digest in read_checksums(checksums).items()]
    sizes = set(ENGLISH_SIZES.values())
    for name, digest in files.items():
        sizes &= {ENGLISH_SIZES.get(path.split("/")[0]) for path, d in published if d == digest and path.endswith(f"/{name}")}
    return sizes.pop() if len(sizes) == 1 else None


def download(dest: Path | None, url: str | None) -> Path:
    """Fetch and verify the v1.2 archive (``url``, else $MEMN2N_BABI_URL, else upstream's), unpack
    it into ``dest`` (default: the cache); its English 1k folder."""
    from memn2n_cli.download import download_archive

    url = url or os.environ.get("MEMN2N_BABI_URL", DOWNLOAD_URL)
    return download_archive(url, dest or default_data_dir().parents[1], CHECKSUMS) / "en"


def named_data_dir(given: Path | None) -> Path | None:
    """The data folder the user named: ``--data-dir``, else ``$MEMN2N_DATA_DIR``, else None."""
    if given is None and os.environ.get("MEMN2N_DATA_DIR"):
        return Path(os.environ["MEMN2N_DATA_DIR"])
    return given


def resolve_data_dir(given: Path | None) -> Path:
    """``--data-dir``, else ``$MEMN2N_DATA_DIR``, else the download cache, else the tasks memn2n
    generated into `generated_data_dir` (said in a warning: they are not the upstream files), else
    the download cache fetched now."""
    given = named_data_dir(given)
    if given is not None:
        if not given.is_dir():
            raise not_a(given, "data directory")
        return given
    data_dir, generated = default_data_dir(), generated_data_dir()
    if not data_dir.is_dir() and generated.is_dir():
        log.warning("using the bAbI tasks memn2n generated in %s, not the upstream files "
                    "(`memn2n data download babi` fetches those, which are then used)", generated)
        return generated
    if not data_dir.is_dir():
        try:
            download(None, None)
        except UserError as e:
            raise ArgumentError("data_dir", f"{e.message}; pass {{}} with a folder of the files, or set "
                                "MEMN2N_DATA_DIR=DIR; offline, `memn2n data generate babi` writes the 20 tasks with "
                                "the built-in simulator where every command finds them", e.path) from None
    return data_dir


def random_test_story(task: int, data_dir: Path | None, rng: random.Random) -> tuple[str, str]:
    """A random story of task ``task``'s test file, in the numbered format (supporting ids and all),
    and where it is from: the test file in ``data_dir`` (else ``$MEMN2N_DATA_DIR``, else the
    download cache) when there is one, else a story the simulator writes (no network needed)."""
    folder = named_data_dir(data_dir) or default_data_dir()
    if folder.is_dir() and any(folder.glob(f"qa{task}_*test.txt")):
        path = task_file(folder, task, "test")
        lines = read_lines(path)
        starts = [n for n, line in enumerate(lines) if line.startswith("1 ")] + [len(lines)]  # id 1 starts a story
        if len(starts) == 1:
            raise UserError("no story in this test file (a story starts at a line numbered 1)", path)
        start = rng.randrange(len(starts) - 1)
        return "".join(line + "\n" for line in lines[starts[start]: starts[start + 1]]), str(path)
    from tasks.babi_generator.world import numbered_story

    return "".join(line + "\n" for line in numbered_story(task, rng)), "memn2n's bAbI simulator (no test file found)"


# Table 1's nine MemN2N columns, named as in the paper, by what sets each one apart from the
# defaults (PE LS RN: position encoding, linear start, random noise; 3 hops, adjacent tying).
# A joint column trains one model on all the tasks, with d = 50 and the joint schedule (memn2n_cli.configs.JOINT).
TABLE_1_COLUMNS = {
    "BoW": {"encoding": "bow", "linear_start": False, "random_noise": 0.0},
    "PE": {"linear_start": False, "random_noise": 0.0},
    "PE LS": {"random_noise": 0.0},
    "PE LS RN": {},
    "1 hop PE LS joint": {"joint": True, "hops": 1, "random_noise": 0.0},
    "2 hops PE LS joint": {"joint": True, "hops": 2, "random_noise": 0.0},
    "3 hops PE LS joint": {"joint": True, "hops": 3, "random_noise": 0.0},
    "PE LS RN joint": {"joint": True},
    "PE LS LW joint": {"joint": True, "tying": "layerwise", "random_noise": 0.0},
}


@register_task("babi")
class BabiTask(qa.QATask):
    summary = "the 20 bAbI question-answering tasks (v1.1 or v1.2; 1k or 10k; en, hn, shuffled)"
    # Table 1 of the paper (arXiv:1503.08895), the nine MemN2N columns: test error (%) on tasks 1-20
    # with 1k training examples; then mean error and failed tasks (error > 5%) on 1k and on 10k, as
    # printed (the 10k rows give no per-task errors). Each column is the best of 10 restarts.
    TABLE_1 = {
        "BoW": ((0.6, 17.6, 71.0, 32.0, 18.3, 8.7, 23.5, 11.4, 21.1, 22.8, 4.1, 0.3, 10.5, 1.3, 24.3, 52.0, 45.4, 48.1, 89.7, 0.1),
               (25.1, 15), (15.4, 9)),
        "PE": ((0.1, 21.6, 64.2, 3.8, 14.1, 7.9, 21.6, 12.6, 23.3, 17.4, 4.3, 0.3, 9.9, 1.8, 0.0, 52.1, 50.1, 13.6, 87.4, 0.0),
              (20.3, 13), (9.4, 6)),
        "PE LS": ((0.2, 12.8, 58.8, 11.6, 15.7, 8.7, 20.3, 12.7, 17.0, 18.6, 0.0, 0.1, 0.3, 2.0, 0.0, 1.6, 49.0, 10.1, 85.6, 0.0),
                 (16.3, 12), (7.2, 4)),
        "PE LS RN": ((0.0, 8.3, 40.3, 2.8, 13.1, 7.6, 17.3, 10.0, 13.2, 15.1, 0.9, 0.2, 0.4, 1.7, 0.0, 1.3, 51.0, 11.1, 82.8, 0.0),
                    (13.9, 11), (6.6, 4)),
        "1 hop PE LS joint": ((0.8, 62.0, 76.9, 22.8, 11.0, 7.2, 15.9, 13.2, 5.1, 10.6, 8.4, 0.4, 6.3, 36.9, 46.4, 47.4, 44.4, 9.6, 90.7, 0.0),
                             (25.8, 17), (24.5, 16)),
        "2 hops PE LS joint": ((0.0, 15.6, 31.6, 2.2, 13.4, 2.3, 25.4, 11.7, 2.0, 5.0, 1.2, 0.0, 0.2, 8.1, 0.5, 51.3, 41.2, 10.3, 89.9, 0.1),
                              (15.6, 11), (10.9, 7)),
        "3 hops PE LS joint": ((0.1, 14.0, 33.1, 5.7, 14.8, 3.3, 17.9, 10.1, 3.1, 6.6, 0.9, 0.3, 1.4, 8.2, 0.0, 3.5, 44.5, 9.2, 90.2, 0.0),
                              (13.3, 11), (7.9, 6)),
        "PE LS RN joint": ((0.0, 11.4, 21.9, 13.4, 14.4, 2.8, 18.3, 9.3, 1.9, 6.5, 0.3, 0.1, 0.2, 6.9, 0.0, 2.7, 40.4, 9.4, 88.0, 0.0),
                          (12.4, 11), (7.5, 6)),
        "PE LS LW joint": ((0.1, 18.8, 31.7, 17.5, 12.9, 2.0, 10.1, 6.1, 1.5, 2.6, 3.3, 0.0, 0.5, 2.0, 1.8, 51.0, 42.6, 9.2, 90.6, 0.2),
                          (15.2, 10), (11.0, 6)),
    }

    def resolve_data_dir(self, given: Path | None) -> Path:
        return resolve_data_dir(given)

    def parse_task_ids(self, values: list[str], default: str = "1") -> list[int]:
        return parse_task_ids(values, default)

    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list[Question]:
        return [q for t in task_ids for q in read_file(task_file(data_dir, t, split), t, self.tokenize)]

    def read_validation(self, data_dir: Path, task_ids: list[int]) -> list[Question] | None:
        """The en-valid folders' own validation questions (``qaN_valid.txt``: the 100 questions
        their ``qaN_train.txt`` leaves out of upstream's 1,000), where every task has them; else
        None, and 10% of the training stories are held out (Sec. 4.2)."""
        files = _validation_files(data_dir, task_ids)
        return [q for t, f in zip(task_ids, files) for q in read_file(f, t, self.tokenize)] if files else None

    def data_files(self, data_dir: Path, task_ids: list[int]) -> list[Path]:
        return [task_file(data_dir, t, s) for t in task_ids for s in ("train", "test")] + _validation_files(data_dir, task_ids)

    def download(self, dest: Path | None, url: str | None) -> Path:
        return download(dest, url)

    def generated_data_dir(self) -> Path:
        """Where `generate` writes by default, and where `resolve_data_dir` looks last."""
        return generated_data_dir()

    GENERATED_SIZES = (1_000, 1_000)  # `data generate babi`: questions in each train and test file, as upstream's 1k

    def generate(self, out: Path, tasks: list[str], train: int, test: int, seed: int) -> None:
        """Write the tasks ``tasks`` (default all) with the built-in simulator (tasks/babi_generator)."""
        from tasks.babi_generator import write_task_files

        for task_id in parse_task_ids(tasks, default="all"):
            write_task_files(task_id, out, train, test, seed)

    def presets(self) -> dict[str, dict[str, dict]]:
        return {"table1": TABLE_1_COLUMNS}

    def random_test_story(self, task_id: int, data_dir: Path | None, rng: random.Random) -> tuple[str, str]:
        if task_id not in TASK_IDS:
            raise UserError(f"unknown bAbI task {task_id}: use a number from 1 to 20")
        return random_test_story(task_id, data_dir, rng)

    def paper_figures(self, preset: str, files: dict[str, str], task_ids: list[int]) -> dict[str, dict]:
        """Table 1 beside a ``table1`` sweep whose data ``files`` (name: SHA-256) are upstream's
        English tasks (`english_size`), else nothing. On 1k data, the errors of the sweep's tasks,
        and the mean and failures as printed when it has all 20, else over its tasks; on 10k data,
        the printed mean and failures only: Table 1 has no per-task 10k errors."""
        size, papers = english_size(files), {}
        if size is None:
            return papers
        if not set(task_ids) <= set(TASK_IDS):  # a damaged results.json (`memn2n plot` says so in one line)
            raise ValueError(f"no bAbI task {min(set(task_ids) - set(TASK_IDS))}")
        for label, (errors, (mean, failed), (mean_10k, failed_10k)) in self.TABLE_1.items():
            if size == "10k":
                papers[label] = {"tasks": {}, "mean": mean_10k, "failed": failed_10k}
                continue
            chosen = {t: errors[t - 1] for t in task_ids}
            if len(task_ids) < len(errors):
                mean, failed = sum(chosen.values()) / len(chosen), sum(e > qa.PASS_ERROR for e in chosen.values())
            papers[label] = {"tasks": chosen, "mean": mean, "failed": failed}
        return papers
