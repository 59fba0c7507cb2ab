"""One module per command; each registers itself on `memn2n_cli.cli.app`."""
