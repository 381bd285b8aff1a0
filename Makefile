# The README's commands. Everything installs into .venv from the lock file; nothing global.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install node-deps checkov demo dev test lint bench chaos lock clean sam-cli emulator deploy-local test-deployed emulator-stop

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

chaos: install ## the fault run: the demo under injected faults; fails if an effect is lost or doubled
	$(BIN)/python bench/bench_chaos.py $(ARGS)

lock:          ## re-pin every dependency after editing pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra local --extra dev --python-version 3.11 -o requirements.lock

# ---------------------------------------------------------------- a real deploy, locally
# SAM CLI and the local AWS emulator (ministack), each in a virtualenv of its own from its own lock
# file in infra/deploy/, on python3.12 (the functions' runtime: sam build builds with it, and the
# emulator runs the handlers with the interpreter it runs on).
PYTHON312     ?= $(shell infra/deploy/find-python.sh 2>/dev/null)
SAM_VENV      := .venv-sam
SAM_STAMP     := $(SAM_VENV)/.installed-$(shell cat infra/deploy/sam.lock | cksum | cut -d' ' -f1)
EMU_VENV      := .venv-emulator
EMU_STAMP     := $(EMU_VENV)/.installed-$(shell cat infra/deploy/emulator.lock | cksum | cut -d' ' -f1)

sam-cli: $(SAM_STAMP)

$(SAM_STAMP): infra/deploy/sam.lock | $(STAMP)
	@test -n "$(PYTHON312)" || { echo "python3.12 is required for sam build (set PYTHON312=...)"; exit 1; }
	test -x $(SAM_VENV)/bin/python || $(PYTHON312) -m venv $(SAM_VENV)
	$(BIN)/uv pip install -q --python $(SAM_VENV)/bin/python -r infra/deploy/sam.lock
	rm -f $(SAM_VENV)/.installed-* && touch $(SAM_STAMP)

emulator: $(EMU_STAMP)

$(EMU_STAMP): infra/deploy/emulator.lock | $(STAMP)
	@test -n "$(PYTHON312)" || { echo "python3.12 is required for the emulator (set PYTHON312=...)"; exit 1; }
	test -x $(EMU_VENV)/bin/python || $(PYTHON312) -m venv $(EMU_VENV)
	$(BIN)/uv pip install -q --python $(EMU_VENV)/bin/python -r infra/deploy/emulator.lock
	rm -f $(EMU_VENV)/.installed-* && touch $(EMU_STAMP)

deploy-local: install sam-cli emulator  ## sam build + sam deploy of template.yaml to ministack on 127.0.0.1
	$(BIN)/python -m cdp_infra.deployed deploy $(ARGS)

test-deployed: install  ## smoke tests of the deployed local stack (deploys it first; skips, saying why, without an emulator)
	-$(MAKE) --no-print-directory sam-cli emulator
	CDP_DEPLOYED_TESTS=1 $(BIN)/python -m pytest -p no:xdist -q tests/deployed $(ARGS)

emulator-stop:
	$(BIN)/python -m cdp_infra.deployed stop

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) $(EMU_VENV) .pytest_cache .hypothesis .ruff_cache
