# The two commands the README promises (`make demo`, `make test`) and a few more for developers.
# Everything installs itself: a venv in .venv for lettafleet; Letta and PostgreSQL in a cache outside the repo.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLEET := examples/fleet.yaml
# The dev server's URL, read from its own record (it may not be on 8283 if that port was taken).
DEV_URL = $$($(BIN)/lettafleet dev-server status --json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["base_url"])')

.PHONY: install demo test unit lint typecheck format bench dev-up dev-down clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools warns on every editable install of a package-dir mapping (core/ -> lettafleet.core): a
	@# screenful of notice that is not about this project, so that one warning category is silenced here.
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/pip install --quiet -e '.[test]'
	@# An editable install leaves lettafleet's own modules uncompiled, and with PYTHONDONTWRITEBYTECODE set Python
	@# compiles them again on every run: 0.2 to 0.5 s of every command (docs/benchmarks.md). pip compiles a wheel's.
	$(BIN)/python -m compileall -q core plugins > /dev/null
	touch $(STAMP)

demo: install
	$(BIN)/lettafleet dev-server up
	@echo; echo "== 1. validate (offline)"; $(BIN)/lettafleet validate $(FLEET)
	@echo; echo "== 2. plan"; LETTA_BASE_URL=$(DEV_URL) $(BIN)/lettafleet plan -f $(FLEET)
	@echo; echo "== 3. apply"; LETTA_BASE_URL=$(DEV_URL) $(BIN)/lettafleet apply -f $(FLEET)
	@echo; echo "== 4. plan again: nothing left to do (exit code 0 with --detailed-exitcode)"; \
	  LETTA_BASE_URL=$(DEV_URL) $(BIN)/lettafleet plan -f $(FLEET) --detailed-exitcode
	@echo; echo "The dev server is still running: export LETTA_BASE_URL=$(DEV_URL) to explore;"; \
	  echo "stop it with: $(BIN)/lettafleet dev-server down"

# Every test: the unit tests (and those with servers of their own) while the dev servers start, then the V1 and the
# App Server integration tests side by side (tests/run.py). `make test ARGS="-x -k lock"` passes arguments to each pytest.
test: install
	$(BIN)/python -m tests.run $(ARGS)

unit: install
	$(BIN)/pytest -m "not integration"

lint: install typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy (configured in pyproject.toml) checks the package by its installed names, lettafleet.core and
# lettafleet.plugins. setuptools maps those to core/ and plugins/, which mypy cannot follow, so two links under build/
# give it that layout; its messages name files through the links (build/typecheck/lettafleet/core/... is core/...).
TYPECHECK_TREE := build/typecheck/lettafleet

typecheck: install
	mkdir -p $(TYPECHECK_TREE)
	ln -sfn ../../../core $(TYPECHECK_TREE)/core
	ln -sfn ../../../plugins $(TYPECHECK_TREE)/plugins
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/lettafleet dev-server up
	$(BIN)/python benchmarks/fleet_benchmark.py --sizes 10,200,500

dev-up: install
	$(BIN)/lettafleet dev-server up

dev-down: install
	$(BIN)/lettafleet dev-server down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache benchmarks/results
