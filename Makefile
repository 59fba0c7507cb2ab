# Fresh machine: `make demo` (set up, then train and evaluate bAbI task 1), `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
# Data the demo can get without network: the shared copy beside this checkout, else the tool's download.
SHARED_BABI = ../shared/data/babi/v1.2/en
DATA_OPT = $(if $(wildcard $(SHARED_BABI)),--data-dir $(SHARED_BABI),)

.PHONY: setup demo test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,ray,plot]'
	touch $@

demo: setup
	$(BIN)/memn2n train babi --task 1 $(DATA_OPT) --out checkpoints/demo-task1-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(BIN)/python -m pytest -q
