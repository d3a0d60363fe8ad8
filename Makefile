# Socle: every set-up step lives here, so that a clean clone works with `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
DEMO_DB := sqlite:///var/demo.db
DEMO_TOKEN = $(BIN)/socle token --client-id demo-operator --scope 'system/*.cruds' --issuer http://127.0.0.1:$(PORT) --database $(DEMO_DB)

.PHONY: install services demo serve test check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# Node is only used by the test suite: the Medplum cross-check of search results.
tests/crosscheck/node_modules/.installed: tests/crosscheck/package-lock.json
	npm ci --prefix tests/crosscheck --no-audit --no-fund --loglevel=error
	touch $@

# The real-client tests (tests/e2e): the npm `openid-client`, and headless Chromium driven by Playwright
# for Python (from requirements.lock). The browser is Debian's: never `playwright install`.
tests/e2e/oidc/node_modules/.installed: tests/e2e/oidc/package-lock.json
	npm ci --prefix tests/e2e/oidc --no-audit --no-fund --loglevel=error
	touch $@

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# The French state design system (DSFR), served locally by the login and portal pages (no CDN).
# --ignore-scripts: the package's preinstall script refuses to run outside its own repository.
DSFR_VERSION := 1.15.3
DSFR_DIR := src/socle/portals/static/dsfr
$(DSFR_DIR)/.installed:
	npm install --ignore-scripts --no-save --no-audit --no-fund --loglevel=error --prefix var/dsfr-build @gouvfr/dsfr@$(DSFR_VERSION)
	mkdir -p $(DSFR_DIR)
	cp -r var/dsfr-build/node_modules/@gouvfr/dsfr/dist/dsfr.min.css var/dsfr-build/node_modules/@gouvfr/dsfr/dist/dsfr.module.min.js \
	      var/dsfr-build/node_modules/@gouvfr/dsfr/dist/dsfr.nomodule.min.js var/dsfr-build/node_modules/@gouvfr/dsfr/dist/fonts \
	      var/dsfr-build/node_modules/@gouvfr/dsfr/dist/favicon $(DSFR_DIR)/
	touch $@

install: $(VENV)/.installed $(DSFR_DIR)/.installed

# PostgreSQL is the production backend; every store test runs on it too, so make sure it is up.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	@pg_isready -h 127.0.0.1 -p 5432

# The demo database is rebuilt from scratch on every run, so loading never duplicates it.
demo: install
	rm -f var/demo.db var/demo.db-wal var/demo.db-shm
	$(BIN)/socle db upgrade --database $(DEMO_DB)
	$(BIN)/socle load data/synthea/synthea-r4-25-patients.tgz --database $(DEMO_DB)
	$(BIN)/socle demo accounts --database $(DEMO_DB)
	$(BIN)/socle clients add demo-operator --backend --database $(DEMO_DB)
	@echo "The FHIR API needs 'Authorization: Bearer <token>' (only /fhir/metadata is public). Operator token,"
	@echo "valid 10 minutes for http://127.0.0.1:$(PORT) (run it again for a new one):"
	@echo "  $(DEMO_TOKEN)"
	@$(DEMO_TOKEN)
	$(BIN)/socle serve --host 127.0.0.1 --port $(PORT) --database $(DEMO_DB)

serve: install
	$(BIN)/socle serve --port $(PORT)

test: install services tests/crosscheck/node_modules/.installed tests/e2e/oidc/node_modules/.installed /usr/bin/chromium check
	$(BIN)/pytest -q -p no:cacheprovider

check: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: install services
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/read.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
