"""Batches of encoded questions (tasks.qa.Encoded) as the question-answering model takes them:
for training, evaluation and prediction alike."""

from __future__ import annotations

import torch
from torch import Tensor

from tasks.qa import Encoded


def distinct_rows(rows: Tensor, table_rows: int) -> tuple[Tensor, Tensor]:
    """The distinct sentence-table rows of a batch, and where each slot's row is among them.

    rows (B, M), rows of a table of ``table_rows`` -> table (U,), story (B, M) with
    table[story] == rows. For (R, B, M), one batch per restart: each restart's own distinct rows,
    padded with row 0 (the empty sentence) to the longest, found for all restarts at once (on a
    GPU, two waits for the device, not one per restart). Stories of a batch share most of their
    sentences (a joint batch of 32 has about 1,300 filled slots and 230 distinct sentences), so
    the model embeds the table, not every slot.
    """
    if rows.dim() == 2:
        return torch.unique(rows, return_inverse=True)
    R = len(rows)
    restart = torch.arange(R, device=rows.device).view(R, 1, 1)
    keys, inverse = torch.unique(rows + restart * table_rows, return_inverse=True)  # sorted by restart, then row
    owner = keys // table_rows  # the restart of each distinct (restart, row)
    counts = torch.bincount(owner, minlength=R)
    first = counts.cumsum(0) - counts  # where each restart's keys begin
    place = torch.arange(len(keys), device=rows.device) - first[owner]  # each key's place in its restart's table
    table = torch.zeros(R, int(counts.max()), dtype=rows.dtype, device=rows.device)
    table[owner, place] = keys % table_rows
    return table, place[inverse]


def make_batch(data: Encoded, index: Tensor, time: Tensor | None = None) -> dict[str, Tensor]:
    """Gather examples, padding memory to the longest story and sentences to the longest sentence in the batch.

    ``index`` (B,) for one model, or (R, B) for R restarts trained together, each with its own
    examples; ``time`` is then (R, N, M), each restart's time indices.
    """
    size = data.memory_size[index]
    slots, width = torch.stack([size.max(), data.width[index].max()]).tolist()  # one wait for the device
    slots = max(1, slots)
    sentences = data.sentences[:, :width]
    table, story = distinct_rows(data.memory[index, :slots], len(sentences))
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
