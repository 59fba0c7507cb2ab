"""`memn2n tasks`: the registered tasks."""

from memn2n_cli.commands.app import app, command, stdout


@app.command("tasks")
@command
def list_tasks() -> None:
    """List the registered tasks (built-in and from installed plugins)."""
    from rich.table import Table

    from tasks import available_tasks

    table = Table("Task", "Kind", "Description")
    for name, cls in available_tasks().items():
        table.add_row(name, cls.kind, cls.summary)
    stdout().print(table)
