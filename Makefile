# The README's two commands: `make demo` and `make test`.  Both create the virtual environment
# and install the project when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# torch exactly 2.13.0: the CPU wheel on the machine's disk (any other spec pulls a CUDA build)
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-fast lint bench clean-outputs

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m pipelines.run $(ARGS)

lint: install
	$(VENV)/bin/ruff check medrep pipelines tests
	$(VENV)/bin/ruff format --check medrep pipelines tests
	$(VENV)/bin/mypy medrep

test: lint
	$(PY) -m pytest $(ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(ARGS)

clean-outputs:
	rm -rf outputs
