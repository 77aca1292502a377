# Two commands: `make demo` serves the app, `make test` runs the test suite.
# Both set up what is missing first: Debian packages (packages.txt) and a .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint format clean

setup: $(STAMP)
	@./scripts/install-debian-packages.sh packages.txt

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: setup
	$(PY) app.py

test: setup
	@./scripts/install-debian-packages.sh packages-test.txt
	$(PY) -m pytest

test-fast: setup  # the library tier: no server, no subprocesses, no training (under a minute)
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
