# cheka: two commands matter — `make run` (the whole product locally) and `make test` (what CI runs).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps run seed test test-unit test-integration test-infra fuzz lint lock format bench load deploy-check clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-local.txt requirements-authority-tencent.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps rapidocr-onnxruntime==1.4.4
	@touch $(STAMP)

run: install
	$(PY) -m chalicelib.local.run

seed: install
	$(VENV)/bin/cheka seed

# Debian packages the tests need (a CJK font, chromium + driver); `make run` does not need them.
system-deps:
	@bash scripts/system-deps.sh

# Two processes (the machines CI runs on have two cores); each test file stays on one process.
test: install system-deps lint
	$(PY) -m pytest -q -n 2 --dist loadfile

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

test-infra: install
	$(PY) -m pytest -q tests/infra

# Schemathesis against a local stack of its own, longer than the bounded run in `make test`; prints a summary.
FUZZ_EXAMPLES ?= 200
FUZZ_STEPS ?= 30
fuzz: install system-deps
	CHEKA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CHEKA_FUZZ_STEPS=$(FUZZ_STEPS) $(PY) -m pytest -q -s -p no:cacheprovider tests/e2e/test_fuzz_api.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chalicelib app.py infra tests bench scripts
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/bandit -c pyproject.toml -q -r chalicelib app.py infra scripts
	$(PY) -m scripts.lock --check
	$(PY) -m scripts.audit_deps --timeout 60

# The Lambda package's hashed locks (requirements*.lock) from requirements.txt and the providers' SDKs: run
# after changing a pin there, and commit the locks (docs/supply-chain.md).
lock: install
	$(PY) -m scripts.lock

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/run.py

# The local stack under load (bench/load; bench/README.md, "Load"): 10, 30 and 60 owners at a time, 60 s
# each, on a stack of its own; LOAD_ARGS="--profile" also profiles the API and moto in the last level.
load: install system-deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-load.txt
	$(PY) bench/load/run_load.py $(LOAD_ARGS)

# A deployment rehearsal without AWS: synth, the Lambda zip (size, lean import), hadolint, and the owner's
# registration in-process on the stage's settings against moto (README: "Deploying a stage").
STAGE ?= prod
deploy-check: install
	$(PY) -m scripts.deploy_check --stage $(STAGE)

clean:
	rm -rf $(VENV) cdk.out chalice.out .pytest_cache .mypy_cache .ruff_cache
