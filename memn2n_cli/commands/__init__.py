"""One module per command, each registering itself on `commands.app.app`; `memn2n_cli.cli` imports them all."""
