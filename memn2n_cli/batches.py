"""Batches of encoded questions (tasks.qa.Encoded) as the question-answering model takes them:
for training, evaluation and prediction alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tasks.qa import Encoded


def distinct_rows(rows: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct sentence-table rows of a batch, and where each slot's row is among them.

    rows (B, M) -> table (U,), story (B, M) with table[story] == rows. For (R, B, M), one batch per
    restart: each restart's own distinct rows, padded with row 0 (the empty sentence) to the longest.
    Stories of a batch share most of their sentences (a joint batch of 32 has about 1,300 filled
    slots and 230 distinct sentences), so the model embeds the table, not every slot.
    """
    if rows.dim() == 2:
        return torch.unique(rows, return_inverse=True)
    tables, stories = zip(*(torch.unique(r, return_inverse=True) for r in rows))
    longest = max(len(t) for t in tables)
    return torch.stack([F.pad(t, (0, longest - len(t))) for t in tables]), torch.stack(stories)


def make_batch(data: Encoded, index: Tensor, time: Tensor | None = None) -> dict[str, Tensor]:
    """Gather examples, padding memory to the longest story and sentences to the longest sentence in the batch.

    ``index`` (B,) for one model, or (R, B) for R restarts trained together, each with its own
    examples; ``time`` is then (R, N, M), each restart's time indices.
    """
    size = data.memory_size[index]
    slots = max(1, int(size.max()))
    width = int(data.width[index].max())
    sentences = data.sentences[:, :width]
    table, story = distinct_rows(data.memory[index, :slots])
    batch = {
        "sentences": sentences[table],  # (U, J) the batch's distinct sentences
        "story": story,  # (B, M) each slot's row of them
        "story_size": size,
        "query": sentences[data.query[index]],  # (B, J)
        "answer": data.answer[index],
    }
    if time is not None and index.dim() == 1:
        batch["time"] = time[index, :slots]
    elif time is not None:  # restart r takes its examples from its own time indices
        batch["time"] = time[torch.arange(len(index), device=index.device).unsqueeze(1), index, :slots]
    return batch
