from memn2n_cli.cli import app

app(prog_name="memn2n")
