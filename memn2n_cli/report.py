"""Results as a Table 1-style rich table (per task error in %, pass or fail, mean, failures)."""

from __future__ import annotations

from rich.table import Table

from memn2n_cli.runs import PASS_ERROR


def results_table(summary: dict, splits: tuple[str, ...]) -> Table:
    main = f"{splits[-1]}_error"
    table = Table(title=f"bAbI error (%)  ·  {summary['run']}", title_justify="left")
    table.add_column("Task", justify="right")
    for split in splits:
        table.add_column(split.capitalize(), justify="right")
    table.add_column("Pass", justify="center")
    for row in summary["tasks"]:
        ok = row[main] <= PASS_ERROR
        table.add_row(str(row["task"]), *(f"{row[f'{s}_error']:.1f}" for s in splits),
                      "[green]yes[/]" if ok else "[red]no[/]")
    table.add_section()
    table.add_row("Mean", *([""] * (len(splits) - 1)), f"{summary[f'mean_{main}']:.1f}", "")
    table.add_row("Failed", *([""] * (len(splits) - 1)), str(summary["failed_tasks"]), f"(> {PASS_ERROR:g}%)")
    return table
