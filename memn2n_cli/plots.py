"""`memn2n plot`: what a run or a sweep looks like, as data, as a matplotlib figure (.png or
.svg) and as the text the terminal shows.

- a run: its learning curves per epoch (error or perplexity, train and valid, and the learning
  rate), from the history each model directory holds (memn2n_cli/history.py; a run written
  before history.jsonl existed, from its metrics.json or state.json); the end of linear start
  (Sec. 4.2) marked for question answering; one curve per restart where the lines carry several;
- a question-answering sweep: its tasks x configurations table (Table 1) as a heatmap of our
  test error, the paper's figure and our difference written in each cell;
- a language-model sweep: perplexity against each option the sweep varies, one panel each, over
  the configurations whose other varied options take their most common value (Table 2's trends:
  hops at memory 100, memory at 6 hops), ours beside the paper's.

A sweep is told from a run by its files (`is_sweep`). matplotlib is the optional extra
``memn2n[plot]``: `new_figure` is the one place that imports it, and says how to install it.
Nothing here imports Typer or Rich; commands/plot.py renders the terminal view.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from memn2n_cli.checkpoint import (CONFIG_FILE, model_dirs, read_config, read_json, run_directory, training_settings,
                                   write_files)
from memn2n_cli.errors import ArgumentError, UserError
from memn2n_cli.history import is_epoch_line, read_history
from memn2n_cli.sweeps import RESULTS_FILE, SPEC_FILE
from tasks import get_task

PICTURE_SUFFIXES = (".png", ".svg")
DPI = 150  # a PNG's pixels per inch; an SVG's size is in points (72 an inch)
ONE_MODEL = (8.0, 5.5)  # inches: a run of one model
EACH_MODEL, MODELS_A_ROW = (4.5, 3.5), 4  # a run of one model per task: a grid of them
EACH_PANEL = (5.0, 4.0)  # a language-model sweep: one panel per option it varies
METRIC = {"qa": "error", "lm": "perplexity"}  # what a task of each kind reports per split, per epoch
# The heatmap's colours, from 0% to 100% error (matplotlib's YlOrRd at its ends and middle):
# darker as the error grows, the same in the picture and in the terminal.
HEAT = ((255, 255, 204), (253, 141, 60), (128, 0, 38))


@dataclass
class Curve:
    """One figure of a model's history, epoch by epoch: "train" or "valid" (the task's metric),
    or "lr"; ``restart`` where the history holds several."""

    name: str
    restart: int | None
    epochs: list[float]
    values: list[float]


@dataclass
class ModelCurves:
    """A model directory's history, ready to draw."""

    name: str  # the directory's name: "qa3", or the run's own
    title: str  # what it was trained on: "babi task 3", "ptb"
    metric: str  # "error" (percent) or "perplexity"
    curves: list[Curve]  # the metric, train and valid, per restart
    lr: list[Curve]  # the learning rate, per restart
    linear_start_ends: list[float] = field(default_factory=list)  # the last epoch of linear start, per restart
    within_epochs: Curve | None = None  # a language model's train perplexity at checkpoints inside epochs


@dataclass
class RunPlot:
    run: Path
    models: list[ModelCurves]


@dataclass
class TablePlot:
    """A question-answering sweep's results: rows (tasks, then the mean) x configurations."""

    sweep: Path
    task: str
    caption: str  # what the figures are
    columns: list[str]
    rows: list[str]  # "task 1", ..., "mean"
    ours: list[list[float | None]]  # [row][column], test error (%)
    paper: list[list[float | None]]  # the paper's, where it has the figure
    failed: list[tuple[int, int | None]]  # per column: our failed tasks, the paper's


@dataclass
class TrendPoint:
    """One configuration in a panel: the option's value, our selected restart's perplexities (None
    while not trained) and the paper's (None where Table 2 lacks the configuration)."""

    value: object
    configuration: str
    valid: float | None
    test: float | None
    paper_valid: float | None
    paper_test: float | None


@dataclass
class TrendPanel:
    option: str  # the option varied along the panel
    fixed: dict  # the sweep's other varied options, at their most common values
    points: list[TrendPoint]


@dataclass
class TrendPlot:
    """A language-model sweep's perplexities against each option it varies."""

    sweep: Path
    task: str
    restarts: int
    panels: list[TrendPanel]
    left_out: list[str]  # configurations in no panel (Table 2's 7 hops at memory 200)


def is_sweep(path: Path) -> bool:
    """The one rule that tells a sweep from a run: a sweep's folder holds sweep.json (its settings)
    and, once its trials are done, results.json; a run's (or each of its model folders) config.json."""
    return (path / SPEC_FILE).is_file() or (path / RESULTS_FILE).is_file()


def read_plot(path: Path) -> RunPlot | TablePlot | TrendPlot:
    """What `draw` draws for the run or sweep in ``path`` (``bundled``: the model that comes with
    memn2n, as everywhere a run is named); a UserError for anything else."""
    path = run_directory(path)
    if not path.is_dir():
        raise UserError("no such run or sweep directory", path)
    return read_sweep(path) if is_sweep(path) else read_run(path)


def read_run(run: Path) -> RunPlot:
    """A run's learning curves, one model directory after another, those still training included
    (history.jsonl grows as they train); those with no epoch yet are left out, and a run with none
    at all is a UserError."""
    try:
        directories = model_dirs(run, in_training=True)
    except UserError:
        raise UserError("not a memn2n run or sweep: no config.json, sweep.json or results.json in it "
                        "or its subdirectories", run) from None
    models, recorded = [], False
    for directory in directories:
        config = read_config(directory) if (directory / CONFIG_FILE).exists() else training_settings(directory)
        task = str(config.get("task"))
        lines = read_history(directory)
        recorded = recorded or bool(lines)
        model = model_curves(directory.name, _trained_on(task, config), get_task(task).kind, lines)
        if model.curves or model.within_epochs:
            models.append(model)
    if not models:
        raise UserError("no history to draw: " + ("no figure recorded is finite (the run diverged)" if recorded
                                                  else "no epoch of training is recorded yet"), run)
    return RunPlot(run, models)


def _trained_on(task: str, config: dict) -> str:
    tasks = config.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return task
    return f"{task} task {tasks[0]}" if len(tasks) == 1 else f"{task}, {len(tasks)} tasks jointly"


def _finite(value) -> bool:
    """A number to draw: not a bool, not NaN or infinite (a diverged run's perplexity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def model_curves(name: str, title: str, kind: str, lines: list[dict]) -> ModelCurves:
    """A model's history lines (history.py's format) as curves: epoch lines per restart (one
    restart where the lines carry none); a language model's progress lines (``step_in_epoch``)
    are not epochs, and become the points ``within_epochs``. Figures that are missing or not
    finite (a diverged run's perplexity) are left out; figures a plugin task adds are ignored."""
    metric = METRIC[kind]
    epochs = [line for line in lines if is_epoch_line(line)]
    restarts: dict[int | None, list[dict]] = {}
    for line in epochs:
        restarts.setdefault(line.get("restart"), []).append(line)
    several = len(restarts) > 1
    curves, lr, ends = [], [], []
    for restart, group in restarts.items():
        xs = [float(line["epoch"]) if _finite(line.get("epoch")) else float(i + 1) for i, line in enumerate(group)]
        for curve, key, into in (("train", f"train_{metric}", curves), ("valid", f"valid_{metric}", curves),
                                 ("lr", "lr", lr)):
            points = [(x, float(line[key])) for x, line in zip(xs, group) if _finite(line.get(key))]
            if points:
                into.append(Curve(curve, restart if several else None, [x for x, _ in points], [y for _, y in points]))
        linear = [x for x, line in zip(xs, group) if line.get("phase") == "linear"]
        if linear and len(linear) < len(group):  # the softmaxes came back after the last of them
            ends.append(max(linear))
    within = None
    progress = [line for line in lines if not is_epoch_line(line) and _finite(line.get(f"train_{metric}"))
                and _finite(line.get("epoch")) and _finite(line.get("steps_in_epoch")) and line["steps_in_epoch"] > 0]
    if progress:
        within = Curve("train", None, [line["epoch"] - 1 + line["step_in_epoch"] / line["steps_in_epoch"] for line in progress],
                       [float(line[f"train_{metric}"]) for line in progress])
    return ModelCurves(name, title, metric, curves, lr, ends, within)


def read_sweep(sweep: Path) -> TablePlot | TrendPlot:
    """A sweep's results.json as a heatmap (question answering) or as trends (a language model)."""
    if not (sweep / RESULTS_FILE).is_file():
        raise UserError("this sweep has no results.json yet: a language-model sweep writes it as each trial "
                        "finishes, a bAbI sweep once all its trials are done", sweep)
    summary = read_json(sweep / RESULTS_FILE)
    try:
        kind = get_task(str(summary["spec"]["task"])).kind
        return results_table(sweep, summary) if kind == "qa" else trends(sweep, summary)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"not the results of a memn2n sweep ({type(e).__name__}: {e})", sweep / RESULTS_FILE) from None


def results_table(sweep: Path, summary: dict) -> TablePlot:
    """Table 1's layout: per task and configuration our selected restart's test error beside the
    paper's (memn2n_cli/qa/sweep.py's `paper_columns`), then the mean; failed tasks per column."""
    from memn2n_cli.qa.sweep import has_paper, paper_columns

    spec, labels = summary["spec"], summary["configurations"]
    paper = paper_columns(summary)
    tasks = sorted({int(t) for label in labels for t in summary["cells"][label]})

    def error(label: str, task: int) -> float | None:
        cell = summary["cells"][label].get(str(task))
        return float(cell["test_error"]) if cell is not None else None

    ours = [[error(label, t) for label in labels] for t in tasks]
    ours.append([summary["columns"][label]["mean_test_error"] for label in labels])
    papers = [[paper[label]["tasks"].get(t) for label in labels] for t in tasks]
    papers.append([paper[label]["mean"] for label in labels])
    failed = [(summary["columns"][label]["failed_tasks"], paper[label]["failed"]) for label in labels]
    caption = (f"test error (%) of the restart with the lowest {spec['select']} error, best of {spec['restarts']}"
               + ("; in brackets the paper's and our difference" if has_paper(summary) else ""))
    return TablePlot(sweep, str(spec["task"]), caption, list(labels), [f"task {t}" for t in tasks] + ["mean"], ours,
                     papers, failed)


def trends(sweep: Path, summary: dict) -> TrendPlot:
    """One panel per option the sweep's configurations vary, over the configurations whose other
    varied options take their most common value (the first, in a tie); the configurations in no
    panel are named. Our figures where a configuration is trained, the paper's where it has them."""
    from memn2n_cli.lm.sweep import LMSweepSpec

    spec = summary["spec"]
    options = dict(LMSweepSpec(**spec).configurations())  # label -> every option it sets
    rows = {row["configuration"]: row for row in summary["rows"]}
    varied = [key for key in dict.fromkeys(k for o in options.values() for k in o)
              if len({repr(o.get(key)) for o in options.values()}) > 1]
    common = {key: Counter(repr(o.get(key)) for o in options.values()).most_common(1)[0][0] for key in varied}
    panels, shown = [], set()
    for key in varied or [None]:  # a sweep that varies nothing: one panel of its configurations, by name
        others = {k: common[k] for k in varied if k != key}
        chosen = [label for label, o in options.items() if all(repr(o.get(k)) == v for k, v in others.items())]
        shown |= set(chosen)
        points = [_point(options[label].get(key) if key else label, label, rows.get(label, {})) for label in chosen]
        if all(_finite(p.value) for p in points):
            points.sort(key=lambda p: p.value)
        fixed = {k: options[chosen[0]].get(k) for k in others} if chosen else {}
        panels.append(TrendPanel(key or "configuration", fixed, points))
    return TrendPlot(sweep, str(spec["task"]), int(spec["restarts"]), panels, [label for label in options if label not in shown])


def _point(value, label: str, row: dict) -> TrendPoint:
    """A configuration's point: None where it has no restart yet; NaN for a trained one whose
    perplexity is null in results.json (diverged)."""
    paper = row.get("paper") or (None, None)

    def trained(figure):
        return None if not row.get("restarts") else math.nan if figure is None else figure

    return TrendPoint(value, label, trained(row.get("valid_perplexity")), trained(row.get("test_perplexity")),
                      paper[0], paper[1])


def heat_colour(error: float) -> tuple[int, int, int]:
    """The heatmap's colour (RGB, 0-255) of a test error in percent: along `HEAT`, 0% to 100%."""
    at = min(max(error / 100, 0.0), 1.0) * (len(HEAT) - 1)
    low = min(int(at), len(HEAT) - 2)
    share = at - low
    return tuple(round(a + (b - a) * share) for a, b in zip(HEAT[low], HEAT[low + 1]))


def luminance(rgb: tuple[float, float, float]) -> float:
    """Relative luminance (Rec. 709 weights) of an RGB colour, in its own units."""
    r, g, b = rgb
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def sparkline(values: list[float], width: int = 48, log: bool = False) -> str:
    """``values`` as a row of block characters (at most ``width``: consecutive values averaged),
    the lowest ▁ and the highest █; on a log scale with ``log``."""
    if not values:
        return ""
    points = [math.log(v) if log and v > 0 else v for v in values]
    if len(points) > width:
        points = [sum(points[i * len(points) // width:(i + 1) * len(points) // width])
                  / len(points[i * len(points) // width:(i + 1) * len(points) // width]) for i in range(width)]
    low, high = min(points), max(points)
    blocks = "▁▂▃▄▅▆▇█"
    return "".join(blocks[0 if high == low else round((p - low) / (high - low) * (len(blocks) - 1))] for p in points)


def check_picture_path(out: Path) -> None:
    """An ArgumentError unless ``out`` names a .png or .svg file (before anything is read or drawn)."""
    if out.suffix.lower() not in PICTURE_SUFFIXES:
        raise ArgumentError("out", "{} must name a .png or .svg file", out)


def new_figure(size: tuple[float, float], layout: str | None = "constrained"):
    """A matplotlib Figure of ``size`` inches, outside pyplot (no window, no global state, nothing
    left open); a UserError naming the extra to install where matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("drawing a picture needs matplotlib: pip install 'memn2n[plot]'") from None
    return Figure(figsize=size, dpi=DPI, layout=layout)


def save_figure(figure, out: Path) -> None:
    """Write ``figure`` to ``out``, a PNG or an SVG by its suffix, whole or not at all (a picture
    being redrawn is never half a file)."""
    check_picture_path(out)
    picture = io.BytesIO()
    figure.savefig(picture, format=out.suffix.lower().lstrip("."), dpi=DPI)
    write_files(out.parent, {out.name: picture.getvalue()})


def draw(data: RunPlot | TablePlot | TrendPlot):
    """The matplotlib figure of what `read_plot` read."""
    return {RunPlot: draw_run, TablePlot: draw_table, TrendPlot: draw_trends}[type(data)](data)


def draw_run(plot: RunPlot):
    """Each model's curves above its learning rate; several models in a grid."""
    count = len(plot.models)
    columns = min(count, MODELS_A_ROW)
    rows = -(-count // columns)
    size = ONE_MODEL if count == 1 else (EACH_MODEL[0] * columns, EACH_MODEL[1] * rows)
    figure = new_figure(size)
    first = plot.models[0]
    figure.suptitle(f"{plot.run.name}: learning curves" + (f" ({first.title})" if count == 1 else ""))
    for model, part in zip(plot.models, figure.subfigures(rows, columns, squeeze=False).flat):
        _draw_model(part, model, title=count > 1)
    return figure


def _draw_model(part, model: ModelCurves, title: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    values, rates = part.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    if title:
        part.suptitle(f"{model.name}: {model.title}", fontsize="medium")
    restarts = list(dict.fromkeys(c.restart for c in model.curves + model.lr))

    def style(curve: Curve) -> dict:
        if curve.restart is None:
            return {"color": {"train": "C0", "valid": "C1", "lr": "C2"}[curve.name], "linestyle": "-"}
        return {"color": f"C{restarts.index(curve.restart) % 10}", "linestyle": "--" if curve.name == "valid" else "-"}

    for curve in model.curves:
        label = curve.name + (f", restart {curve.restart}" if curve.restart is not None else "")
        values.plot(curve.epochs, curve.values, marker="." if len(curve.epochs) <= 40 else None, label=label,
                    **style(curve))
    if model.within_epochs is not None:
        values.scatter(model.within_epochs.epochs, model.within_epochs.values, s=6, color="C0", alpha=0.3,
                       label="train, within an epoch")
    for curve in model.lr:
        rates.plot(curve.epochs, curve.values, **style(curve))
    for i, end in enumerate(sorted(set(model.linear_start_ends))):
        for axes in (values, rates):
            axes.axvline(end + 0.5, color="grey", linestyle=":", label="linear start ends" if axes is values and i == 0 else None)
    if model.metric == "perplexity":
        values.set_yscale("log")
    elif model.curves:
        values.set_ylim(bottom=0)
    if any(v > 0 for c in model.lr for v in c.values):
        rates.set_yscale("log")
    values.set_ylabel("error (%)" if model.metric == "error" else "perplexity")
    rates.set_ylabel("learning rate")
    rates.set_xlabel("epoch")
    rates.xaxis.set_major_locator(MaxNLocator(integer=True))
    values.grid(alpha=0.3)
    values.legend(fontsize="small")


def draw_table(plot: TablePlot):
    """The heatmap: a cell per task and configuration coloured by our test error (0-100%, `HEAT`),
    our figure in it and, where the paper has one, the paper's and our difference; the mean below
    a white line, the failed tasks under each column."""
    figure = new_figure((2.4 + 1.25 * len(plot.columns), 1.9 + 0.42 * len(plot.rows)))
    from matplotlib.colors import LinearSegmentedColormap

    colours = LinearSegmentedColormap.from_list("memn2n-error", [tuple(c / 255 for c in rgb) for rgb in HEAT])
    colours = colours.with_extremes(bad="lightgrey")  # a cell without a figure
    axes = figure.subplots()
    grid = [[math.nan if v is None else v for v in row] for row in plot.ours]
    image = axes.imshow(grid, cmap=colours, vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    for r, row in enumerate(plot.ours):
        for c, ours in enumerate(row):
            if ours is None:
                continue
            paper = plot.paper[r][c]
            text = f"{ours:.1f}" + (f"\n({paper:.1f}, {ours - paper:+.1f})" if paper is not None else "")
            ink = "black" if luminance(heat_colour(ours)) > 140 else "white"
            axes.text(c, r, text, ha="center", va="center", fontsize=7, color=ink, linespacing=1.1)
    axes.axhline(len(plot.rows) - 1.5, color="white", linewidth=3)
    axes.set_xticks(range(len(plot.columns)), [textwrap.fill(label, 12) for label in plot.columns], fontsize=8)
    axes.xaxis.tick_top()
    axes.set_yticks(range(len(plot.rows)), plot.rows, fontsize=8)
    bottom = axes.secondary_xaxis("bottom")
    bottom.set_xticks(range(len(plot.columns)),
                      [f"{ours} failed" + (f" ({paper})" if paper is not None else "") for ours, paper in plot.failed],
                      fontsize=8)
    axes.tick_params(length=0)
    figure.colorbar(image, ax=axes, label="test error (%)", shrink=0.6)
    title = f"{plot.sweep.name}: {plot.task}, {plot.caption}"
    figure.suptitle(textwrap.fill(title, int(11 * figure.get_figwidth())), fontsize="medium")
    return figure


def draw_trends(plot: TrendPlot):
    """A panel per option the sweep varies: test (solid) and valid (dashed) perplexity, ours
    (circles, trained configurations only) and the paper's (squares)."""
    figure = new_figure((EACH_PANEL[0] * len(plot.panels), EACH_PANEL[1]))
    panels = figure.subplots(1, len(plot.panels), squeeze=False)[0]
    for axes, panel in zip(panels, plot.panels):
        numeric = all(_finite(p.value) for p in panel.points)
        x = {p.configuration: (p.value if numeric else i) for i, p in enumerate(panel.points)}
        for name, marker, colour, figures in (("ours", "o", "C0", ("test", "valid")),
                                              ("paper", "s", "C1", ("paper_test", "paper_valid"))):
            for split, key in zip(("test", "valid"), figures):
                shown = [(x[p.configuration], getattr(p, key)) for p in panel.points if _finite(getattr(p, key))]
                if shown:
                    axes.plot([a for a, _ in shown], [b for _, b in shown], marker=marker, color=colour,
                              linestyle="-" if split == "test" else "--", alpha=1.0 if split == "test" else 0.6,
                              label=f"{name}, {split}")
        if not numeric:
            axes.set_xticks(range(len(panel.points)), [textwrap.fill(str(p.value), 12) for p in panel.points])
        elif panel.points:
            axes.set_xticks(sorted({p.value for p in panel.points}))
        name = panel.option.replace("_", " ")
        at = ", ".join(f"{k.replace('_', ' ')} = {v}" for k, v in panel.fixed.items())
        axes.set_title(f"perplexity against {name}" + (f"\nat {at}" if at else ""), fontsize="medium")
        axes.set_xlabel(name)
        axes.set_ylabel("perplexity")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    papers = any(_finite(p.paper_test) for panel in plot.panels for p in panel.points)
    title = (f"{plot.sweep.name}: {plot.task}, best of {plot.restarts} restart{'s' * (plot.restarts != 1)} by validation "
             "perplexity" + (", beside the paper's Table 2" if papers else ""))
    figure.suptitle(textwrap.fill(title, int(11 * figure.get_figwidth())))
    return figure
