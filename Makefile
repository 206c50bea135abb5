# The two commands of the README: `make demo` and `make test`. Both set up
# .venv from scratch when it is missing, so they work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint setup clean

$(BIN)/redline: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(BIN)/redline

setup: $(BIN)/redline

demo: setup
	$(BIN)/redline demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	TRITON_INTERPRET=1 $(BIN)/pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
