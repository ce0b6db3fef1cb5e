# Fresh machine: `make demo` (main job on the embedded dataset) or `make test` (whole suite, deterministic).
# Before stopping: `make fuzz` (every property test, 10x the examples, new random ones each run).
# `make docs`: the documentation site (mkdocs, strict) into site/.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz docs setup
setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/poisonlab demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

fuzz: $(STAMP)
	POISONLAB_FUZZ=1 $(VENV)/bin/python -m pytest -q -m hypothesis

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
