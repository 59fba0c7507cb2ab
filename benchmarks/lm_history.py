"""A language-model run's epochs as a Markdown table: learning rate, perplexities, training time.

    python benchmarks/lm_history.py RUN

Reads RUN/state.json (written at every checkpoint, so it also works on a run still training)
and prints one row per finished epoch, then the totals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

run = Path(sys.argv[1])
state = json.loads((run / "state.json").read_text())
config = json.loads((run / "config.json").read_text())
batch = config["training"]["batch_size"]
tokens = -(-config["data"]["tokens"]["train"] // batch) * batch  # predicted per epoch: its steps times the batch
print("| epoch | learning rate | train perplexity | valid perplexity | training time | tokens/s |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for record in state["history"]:
    seconds = record.get("train_seconds")  # absent in runs from before it was recorded
    time = f"{seconds / 60:.1f} min" if seconds else ""
    speed = f"{tokens / seconds:,.0f}" if seconds else ""
    print(f"| {record['epoch']} | {record['lr']:.6g} | {record['train_perplexity']:.1f} | "
          f"{record['valid_perplexity']:.1f} | {time} | {speed} |")
hours = state["seconds"] / 3600
print(f"\n{state['epoch']} epochs, {state['steps']:,} steps, {hours:.2f} h of training steps "
      f"({'finished' if state['finished'] else 'not finished'}; learning rate now {state['lr']:.6g}).")
