"""`memn2n plot RUN|SWEEP`: learning curves of a run, a sweep's results as a picture (--out
FILE.png or FILE.svg) or, without --out, compactly in the terminal. What is drawn is read and
drawn by memn2n_cli/plots.py; this module parses the command and renders the terminal view."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text

from memn2n_cli.commands.app import app, command, stdout

if TYPE_CHECKING:
    from memn2n_cli import plots


@app.command("plot")
@command
def plot_command(
    target: Annotated[Path, typer.Argument(metavar="RUN|SWEEP", help="A run directory (`memn2n train --out`) or a "
                                                                     "sweep directory (`memn2n sweep --out`).")],
    out: Annotated[Path | None, typer.Option(help="Save the picture as FILE.png or FILE.svg (needs matplotlib: "
                                                  "pip install 'memn2n[plot]'). [default: a compact view in the terminal]")] = None,
) -> None:
    """A run's learning curves (error or perplexity, train and valid, and the learning rate, per epoch);
    a bAbI sweep's tasks x columns as a heatmap of test error beside the paper's Table 1; a language-model
    sweep's perplexity against each option it varies, beside the paper's Table 2."""
    from memn2n_cli import plots  # torch and the run readers: not for `memn2n --help`

    if out is not None:
        plots.check_picture_path(out)  # before anything is read
    data = plots.read_plot(target)
    if out is None:
        stdout().print({plots.RunPlot: run_view, plots.TablePlot: table_view, plots.TrendPlot: trends_view}[type(data)](data))
        return
    plots.save_figure(plots.draw(data), out)
    print(f"saved {out}", file=sys.stderr)


def run_view(plot: plots.RunPlot) -> Group:
    """Per model, a sparkline per series with its first, best and last figures; the sparklines as
    wide as the terminal leaves room for (the other columns take some 68)."""
    from memn2n_cli import plots

    width = max(10, min(80, stdout().width - 68))
    tables = []
    for model in plot.models:
        table = Table(title=Text(f"{model.name}: {model.title}, per epoch"), title_justify="left")
        for name, justify in (("", "left"), ("curve", "left"), ("first", "right"), ("best", "right"),
                              ("last", "right"), ("epochs", "right")):
            table.add_column(name, justify=justify, no_wrap=name == "curve")
        log = model.metric == "perplexity"
        unit = "%" if model.metric == "error" else ""
        for curve in model.curves:
            best = min(range(len(curve.values)), key=curve.values.__getitem__)
            name = f"{curve.name} {model.metric}" + (f", restart {curve.restart}" if curve.restart is not None else "")
            table.add_row(name, plots.sparkline(curve.values, width, log=log), f"{curve.values[0]:.1f}{unit}",
                          f"{curve.values[best]:.1f}{unit} (epoch {curve.epochs[best]:g})", f"{curve.values[-1]:.1f}{unit}",
                          str(len(curve.values)))
        for curve in model.lr:
            name = "learning rate" + (f", restart {curve.restart}" if curve.restart is not None else "")
            table.add_row(name, plots.sparkline(curve.values, width, log=True), f"{curve.values[0]:.3g}", "",
                          f"{curve.values[-1]:.3g}", str(len(curve.values)))
        if model.within_epochs is not None:
            within = model.within_epochs.values
            table.add_row("train, within epochs", plots.sparkline(within, width, log=True), f"{within[0]:.1f}", "",
                          f"{within[-1]:.1f}", "")
        if model.linear_start_ends:
            table.caption = "linear start ended after epoch " + ", ".join(f"{e:g}" for e in model.linear_start_ends)
            table.caption_justify = "left"
        tables.append(table)
    return Group(*tables)


def table_view(plot: plots.TablePlot) -> Table:
    """The heatmap as a table: "ours (paper, difference)" per cell, on the picture's colour."""
    from memn2n_cli import plots

    table = Table(title=Text(f"{plot.sweep.name}: {plot.task}, {plot.caption}"), title_justify="left")
    table.add_column("", justify="right")
    for label in plot.columns:
        table.add_column(label, justify="right")
    for r, row in enumerate(plot.rows):
        if row == "mean":
            table.add_section()
        cells = []
        for c, ours in enumerate(plot.ours[r]):
            paper = plot.paper[r][c]
            if ours is None:
                cells.append("-")
                continue
            colour = plots.heat_colour(ours)
            ink = "black" if plots.luminance(colour) > 140 else "white"
            cells.append(Text(f"{ours:.1f}" + (f" ({paper:.1f}, {ours - paper:+.1f})" if paper is not None else ""),
                              style=Style(color=ink, bgcolor=Color.from_rgb(*colour))))
        table.add_row(row, *cells)
    table.add_row("failed", *(f"{ours}" + (f" ({paper})" if paper is not None else "") for ours, paper in plot.failed))
    return table


def trends_view(plot: plots.TrendPlot) -> Group:
    """A small table per panel: the option's values and the perplexities, ours and the paper's."""
    def figure(value) -> str:
        return "" if value is None else f"{value:.1f}"

    tables = []
    for panel in plot.panels:
        at = ", ".join(f"{k.replace('_', ' ')} = {v}" for k, v in panel.fixed.items())
        table = Table(title=Text(f"{plot.sweep.name}: {plot.task} perplexity against {panel.option.replace('_', ' ')}"
                                 + (f" at {at}" if at else "")), title_justify="left")
        for name in (panel.option.replace("_", " "), "valid", "test", "paper valid", "paper test"):
            table.add_column(name, justify="right")
        for p in panel.points:
            ours = [figure(p.valid), figure(p.test)] if p.test is not None else ["not trained yet", ""]
            table.add_row(str(p.value), *ours, figure(p.paper_valid), figure(p.paper_test))
        tables.append(table)
    notes = [Text(f"best of {plot.restarts} restart{'s' * (plot.restarts != 1)} by validation perplexity")]
    if plot.left_out:
        notes.append(Text(f"in no panel: {', '.join(plot.left_out)} (results.md lists every configuration)"))
    return Group(*tables, *notes)
