# The single entry point: `make run` and `make test` each set up what they need
# on a fresh machine (venv, pinned packages, Debian packages when root), and are
# fast when everything is already in place.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Extras the lab and its tests need today; each deployment unit adds its own.
EXTRAS := api,ml,infra,dev
# Debian packages the lab needs at run time (installed when running as root):
# Tesseract and the language packs of the project languages OCR serves
# (annotrain/domain/ocr.py maps en→eng, de→deu, es→spa, pt→por, it→ita, da→dan, ro→ron),
# and Chromium with its driver for the web console's browser tests.
DEBIAN_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-spa \
	tesseract-ocr-por tesseract-ocr-ita tesseract-ocr-dan tesseract-ocr-ron \
	chromium chromium-driver
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# Constraints pin every package, build back-ends included (PIP_CONSTRAINT reaches
# pip's isolated build environments too).
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/python -m pip

SAMPLE := examples/sample_project

.PHONY: help setup system-deps infra-cli run test lint format typecheck unit bench bench-synth synth openapi web web-deps lock clean

help:
	@echo "make run        set up and serve the lab (web console and HTTP API) on http://127.0.0.1:8080"
	@echo "make web        rebuild the web console (web/ -> annotrain/web/static/, committed; needs npm)"
	@echo "make test       set up and run lint, type checks and the test suite"
	@echo "make synth      synthesize the CDK app into cdk.out (offline: no AWS credentials, no Docker)"
	@echo "make lint | typecheck | bench | bench-synth | format | openapi | lock | clean"

setup: system-deps $(STAMP) infra-cli web-deps

# The CDK CLI, pinned in infra/package-lock.json (aws-cdk 2.x reads this aws-cdk-lib's
# cloud assembly; the unpinned 3.x does not).
CDK_CLI := infra/node_modules/.bin/cdk
infra-cli: $(CDK_CLI)

$(CDK_CLI): infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The CDK app runs on node 20 through jsii; its end-of-life banner is noise here.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
CDK := CDK_DISABLE_VERSION_CHECK=true CDK_DISABLE_CLI_TELEMETRY=true $(CDK_CLI)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-*
	@touch $@

system-deps:
ifneq ($(strip $(DEBIAN_PACKAGES)),)
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Missing Debian packages: $$missing (run as root, or: sudo apt-get install $$missing)"; exit 1; fi; \
	fi
endif

# Serve the web console and the HTTP API on http://127.0.0.1:8080 (OpenAPI at /docs); the first start
# creates an admin and writes its token to .annotrain/admin-token.
run: setup
	$(BIN)/annotrain serve --data-dir .annotrain --demo $(SAMPLE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest

test: lint typecheck unit

# The HTTP API's OpenAPI document, checked in; a test fails when it is out of date.
openapi: setup
	$(BIN)/python -m annotrain.api.openapi > docs/openapi.json

# The web console: its sources in web/, its build committed in annotrain/web/static/
# (so `make run` and the Lambda bundle need no Node). Run after changing web/; a test
# rebuilds it from the sources and fails when the committed build differs.
WEB_DEPS := web/node_modules/.installed
web-deps: $(WEB_DEPS)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web: web-deps
	cd web && npm run build

bench: setup bench-synth
	$(BIN)/python -m benchmarks.selection_export
	$(BIN)/python -m benchmarks.sqlite_import
	$(BIN)/python -m benchmarks.api
	$(BIN)/python -m benchmarks.visual_ner

# Synthesize every stack with the pinned CLI: no AWS credentials, no Docker engine
# (the Lambda bundle is built by pip, the job images only staged). docs/deploy.md.
synth: setup
	$(CDK) synth --quiet --no-notices --no-version-reporting

# `make synth`'s wall time (goal: under 60 s on two cores, the Lambda bundle cached).
bench-synth: setup
	@$(BIN)/python -c "import subprocess, sys, time; t = time.perf_counter(); \
	r = subprocess.run(['$(MAKE)', '--no-print-directory', 'synth'], stdout=subprocess.DEVNULL); \
	print(f'make synth: {time.perf_counter() - t:.1f} s wall (goal < 60 s)'); sys.exit(r.returncode)"

# Re-pin every direct and transitive dependency of every extra into constraints.txt.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet torch==2.13.0 -e ".[api,ml,infra,dev]"
	{ echo "# Generated by 'make lock' from pyproject.toml: every package, pinned."; \
	  .lock-venv/bin/pip freeze --exclude-editable | sed -E 's/^(torch==[0-9.]+)\+cpu$$/\1/'; \
	  .lock-venv/bin/pip list --format=freeze | grep -iE '^(setuptools|wheel)=='; \
	} > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis cdk.out .build infra/node_modules
