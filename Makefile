# The README's commands. Everything installs into .venv from the lock file; nothing global.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install node-deps checkov demo dev test lint bench lock clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# The Node SDK that the SDK-compatibility tests drive; skipped (and those tests say so) without npm.
node-deps:
	@if command -v npm >/dev/null 2>&1 && [ ! -d node_modules/@segment/analytics-node ]; then \
	  npm ci --no-audit --no-fund --silent || echo "npm ci failed: the Node SDK test will be skipped"; fi

# checkov (template security checks) in a virtualenv of its own, from its own lock file; the test
# that runs it is skipped, and says so, without it.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat infra/checkov/requirements.lock | cksum | cut -d' ' -f1)

checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): infra/checkov/requirements.lock | $(STAMP)
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install -q --python $(CHECKOV_VENV)/bin/python -r infra/checkov/requirements.lock
	rm -f $(CHECKOV_VENV)/.installed-* && touch $(CHECKOV_STAMP)

demo: install  ## the main job: the whole pipeline on the local stack, with a summary
	$(BIN)/cdp demo $(ARGS)

dev: install   ## serve the local stack until Ctrl-C
	$(BIN)/cdp dev $(ARGS)

test: install node-deps checkov  ## the whole test suite (unit, integration on moto, end to end over HTTP)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

bench: install ## figures only, no pass/fail
	$(BIN)/python -m bench $(ARGS)

lock:          ## re-pin every dependency after editing pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra local --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .hypothesis .ruff_cache
