"""What the commands show: Table 1-style results, and Figure 2-style hop attention."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from memn2n_cli.configs import SPLITS
from memn2n_cli.qa.runs import PASS_ERROR
from tasks.qa import qa_task


def results_table(summary: dict, splits: tuple[str, ...]) -> Table:
    """Error per task; with `eval`'s attention figures, also the share of questions whose
    most-attended sentence is a supporting fact, per hop and at any hop; then the figures a task
    adds of its own (`QATask.metrics`), a column each."""
    main = f"{splits[-1]}_error"
    hops = max((len(row.get("attention_on_support", [])) for row in summary["tasks"]), default=0)
    shared = {"task", *(f"{split}_error" for split in SPLITS)}
    own = sorted({k for row in summary["tasks"] for k, v in row.items() if k not in shared
                  and not k.startswith("attention_on_support") and isinstance(v, (int, float))})  # a task's own figures
    task = qa_task(summary["task"]) if "task" in summary else None  # summaries written before it was there have none
    name = None if task is None or task.numbered() else summary["task"]  # "jsonl" rather than "1"
    table = Table(title=Text(f"Error (%)  ·  {summary['run']}"), title_justify="left")
    table.add_column("Task", justify="right")
    for split in splits:
        table.add_column(split.capitalize(), justify="right")
    table.add_column("Pass", justify="center")
    for k in range(hops):
        table.add_column(f"Hop {k + 1}\non support", justify="right")
    if hops:
        table.add_column("Any hop\non support", justify="right")
    for figure in own:
        table.add_column(figure, justify="right", no_wrap=True, min_width=len(figure))
    for row in summary["tasks"]:
        ok = row[main] <= PASS_ERROR
        attention = [f"{x:.0f}" for x in row.get("attention_on_support", [])]
        if attention:
            attention.append(f"{row['attention_on_support_any']:.0f}")
        table.add_row(name or str(row["task"]), *(f"{row[f'{s}_error']:.1f}" if f"{s}_error" in row else "-" for s in splits),
                      "[green]yes[/]" if ok else "[red]no[/]", *attention,
                      *(f"{row[figure]:.1f}" if figure in row else "-" for figure in own))
    table.add_section()
    table.add_row("Mean", *([""] * (len(splits) - 1)), f"{summary[f'mean_{main}']:.1f}", "")
    table.add_row("Failed", *([""] * (len(splits) - 1)), str(summary["failed_tasks"]), f"(> {PASS_ERROR:g}%)")
    return table


def attention_view(prediction) -> Group:
    """The paper's Figure 2 for one question: each story sentence with its support mark and the
    attention p of every hop (the largest of each hop emphasised), then question and answers.
    (Where the question is from, ``prediction.question.source``, goes above it, unwrapped.)"""
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
        cells = [Text(q.sentences[sentence])]  # the user's text, never read as rich markup
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
    return Group(table, *lines, Text())


SHADES = " ░▒▓█"  # Figure 3's cells without colour: from no attention to the most


def memory_position_view(weights) -> Table:
    """Figure 3 in the terminal: one row per hop, one cell per memory position (the current word
    first), white where attention goes; positions averaged in groups to fit the screen."""
    from rich.color import Color
    from rich.style import Style

    hops, positions = weights.shape
    group = max(1, -(-positions // 100))  # at most 100 cells a row
    table = Table(title=f"Average attention per memory position (each row scaled to 1; a cell is {group} position(s))",
                  title_justify="left", box=None, show_header=True)
    table.add_column("Hop", justify="right")
    table.add_column(f"position 1 ... {positions}")
    for k in range(hops):
        row = Text()
        for start in range(0, positions, group):
            share = float(weights[k, start: start + group].mean())
            level = int(255 * share)
            # the shade as a character too, so that the figure reads without colour (piped, a file)
            row.append(SHADES[min(len(SHADES) - 1, int(share * len(SHADES)))],
                       Style(color=Color.from_rgb(level, level, level), bgcolor=Color.from_rgb(level, level, level)))
        table.add_row(str(k + 1), row)
    return table
