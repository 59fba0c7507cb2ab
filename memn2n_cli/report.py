"""What the commands show: Table 1-style results, and Figure 2-style hop attention."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from memn2n_cli.runs import PASS_ERROR


def results_table(summary: dict, splits: tuple[str, ...]) -> Table:
    """Error per task; with `eval`'s attention figures, also the share of questions whose
    most-attended sentence is a supporting fact, per hop and at any hop."""
    main = f"{splits[-1]}_error"
    hops = max((len(row.get("attention_on_support", [])) for row in summary["tasks"]), default=0)
    table = Table(title=f"bAbI error (%)  ·  {summary['run']}", title_justify="left")
    table.add_column("Task", justify="right")
    for split in splits:
        table.add_column(split.capitalize(), justify="right")
    table.add_column("Pass", justify="center")
    for k in range(hops):
        table.add_column(f"Hop {k + 1}\non support", justify="right")
    if hops:
        table.add_column("Any hop\non support", justify="right")
    for row in summary["tasks"]:
        ok = row[main] <= PASS_ERROR
        attention = [f"{x:.0f}" for x in row.get("attention_on_support", [])]
        if attention:
            attention.append(f"{row['attention_on_support_any']:.0f}")
        table.add_row(str(row["task"]), *(f"{row[f'{s}_error']:.1f}" for s in splits),
                      "[green]yes[/]" if ok else "[red]no[/]", *attention)
    table.add_section()
    table.add_row("Mean", *([""] * (len(splits) - 1)), f"{summary[f'mean_{main}']:.1f}", "")
    table.add_row("Failed", *([""] * (len(splits) - 1)), str(summary["failed_tasks"]), f"(> {PASS_ERROR:g}%)")
    return table


def attention_view(prediction) -> Group:
    """The paper's Figure 2 for one question: each story sentence with its support mark and the
    attention p of every hop (the largest of each hop emphasised), then question and answers."""
    q = prediction.question
    hops = len(prediction.attention)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Story", overflow="fold")
    if q.supporting:
        table.add_column("Support", justify="center")
    for k in range(hops):
        table.add_column(f"Hop {k + 1}", justify="right")
    tops = [max(range(len(p)), key=p.__getitem__) for p in prediction.attention]
    for row, sentence in enumerate(prediction.memory):
        cells = [q.sentences[sentence]]
        if q.supporting:
            cells.append("yes" if q.line_ids[sentence] in q.supporting else "")
        for k in range(hops):
            p = prediction.attention[k][row]
            cells.append(Text(f"{p:.2f}", style="bold reverse" if row == tops[k] else "dim" if p < 0.01 else ""))
        table.add_row(*cells)
    lines = [Text.assemble(("Question: ", "bold"), q.text)]
    if q.answer is not None:
        lines.append(Text.assemble(("Answer: ", "bold"), q.answer))
    verdict = {True: "green", False: "red", None: ""}[prediction.correct]
    lines.append(Text.assemble(("Prediction: ", "bold"), (prediction.answer, verdict),
                                 f"  (p = {prediction.probability:.2f})"))
    return Group(Text(q.source, style="dim"), table, *lines, Text())
