"""`jsonl`: question answering on your own data, one JSON object per line (`tasks.qa.parse_jsonl`).

A folder with ``train.jsonl`` and ``test.jsonl`` (and, optionally, ``valid.jsonl``; without it,
10% of the training questions are held out, as for bAbI). Each line is one question with the
story it is asked about::

    {"story": ["Mary moved to the bathroom.", "John went to the hallway."],
     "question": "Where is Mary?", "answer": "bathroom", "supporting": [0]}

``supporting`` (optional) gives 0-based indices into ``story``: shown by `predict` and
`visualize`, and counted by `eval`'s attention figures, never trained on. An answer is one entry
of the answer vocabulary, whatever it holds ("bathroom", "n,w", "living room").

This task is registered the way a plugin from another package is: through the entry-point group
``memn2n.tasks`` in pyproject.toml (``jsonl = "tasks.jsonl:JsonlTask"``), not by an import in
``tasks/__init__.py``.
"""

from __future__ import annotations

from pathlib import Path

from memn2n_cli.configs import SPLITS
from memn2n_cli.errors import ArgumentError
from tasks.qa import QATask, Question, parse_jsonl
from tasks.text import read_lines


class JsonlTask(QATask):
    summary = "your own question answering: train.jsonl, test.jsonl (valid.jsonl) in --data-dir"

    def resolve_data_dir(self, given: Path | None) -> Path:
        if given is None:
            raise ArgumentError("data_dir", "jsonl trains on your own data: pass {}, a folder with train.jsonl and test.jsonl")
        return super().resolve_data_dir(given)

    def read(self, data_dir: Path, task_ids: list[int], split: str) -> list[Question]:
        return parse_jsonl(read_lines(data_dir / f"{split}.jsonl"), data_dir / f"{split}.jsonl", tokenize=self.tokenize)

    def read_validation(self, data_dir: Path, task_ids: list[int]) -> list[Question] | None:
        valid = data_dir / "valid.jsonl"
        return parse_jsonl(read_lines(valid), valid, tokenize=self.tokenize) if valid.exists() else None

    def data_files(self, data_dir: Path, task_ids: list[int]) -> list[Path]:
        return [data_dir / f"{split}.jsonl" for split in SPLITS if (data_dir / f"{split}.jsonl").exists()]
