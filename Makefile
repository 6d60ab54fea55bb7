# helpdesk-fetch: `make demo` shows it working, `sudo make test-deps && make test` proves it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= $(or $(TMPDIR),/tmp)/helpdesk-fetch-demo
SYSTEM_PACKAGES := dovecot-imapd dovecot-pop3d postgresql faketime openssl systemd strace curl jq

.PHONY: install demo test test-corpus test-deps lint docs migration bench clean

install: $(VENV)/.installed  ## the tool in a virtual environment of its own
	@echo "helpdesk-fetch is installed in $(abspath $(VENV)): $(abspath $(BIN))/helpdesk-fetch"

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres]'
	touch $@

demo: install  ## fetch the bundled sample Maildirs into a scratch SQLite database, show tickets
	rm -rf $(DEMO_DIR)
	cp -r helpdesk_fetch/demo $(DEMO_DIR)
	chmod 700 $(DEMO_DIR)
	for box in helpdesk monitoring; do mkdir -p $(DEMO_DIR)/$$box/cur $(DEMO_DIR)/$$box/tmp; done
	$(BIN)/helpdesk-fetch --config $(DEMO_DIR)/accounts.toml fetch
	$(BIN)/helpdesk-fetch --config $(DEMO_DIR)/accounts.toml tickets list
	@echo
	@echo "Try:"
	@echo "  alias hf='$(abspath $(BIN))/helpdesk-fetch --config $(DEMO_DIR)/accounts.toml'"
	@echo "  hf tickets show 1001"
	@echo "  hf status"

test-deps:  ## as root: the servers the tests start (Dovecot, Courier, Cyrus, PostgreSQL), libfaketime
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES)
	bash tests/install-servers.sh

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $@

# Branch coverage of the package, processes the tests start included (setup.cfg [coverage:run]).
# The floor holds for the whole suite; a subset (PYTEST_ARGS) covers less by design.
COVERAGE_FLOOR := 92
COVERAGE_ARGS = --cov=helpdesk_fetch --cov-branch --cov-report=term:skip-covered \
	$(if $(PYTEST_ARGS),,--cov-fail-under=$(COVERAGE_FLOOR))

test: $(VENV)/.test-installed  ## the whole suite against real Dovecot, SMTP and PostgreSQL, with coverage
	$(BIN)/python -m pytest $(COVERAGE_ARGS) $(PYTEST_ARGS)

test-corpus: $(VENV)/.test-installed  ## the corpus tests on a directory of messages: make test-corpus CORPUS=DIR
	@test -n "$(CORPUS)" || { echo "make test-corpus needs CORPUS=DIR, a directory of messages (*.eml, Maildir)" >&2; exit 2; }
	$(BIN)/python -m pytest -m corpus --corpus="$(CORPUS)" $(PYTEST_ARGS)

lint: $(VENV)/.test-installed  ## ruff, and mypy (strict; pyproject.toml [tool.mypy])
	$(BIN)/ruff check helpdesk_fetch tests bench
	$(BIN)/mypy

docs: $(VENV)/.installed  ## regenerate README.md's command reference from the CLI's help
	$(BIN)/python -m helpdesk_fetch.cli.docs

migration: $(VENV)/.installed  ## write the next numbered migration from the models (NAME=what_it_adds)
	@test -n "$(NAME)" || { echo "usage: make migration NAME=what_it_adds" >&2; exit 2; }
	$(BIN)/python -m helpdesk_fetch.store.migrations $(NAME)

bench: $(VENV)/.test-installed  ## throughput, latency and memory figures (bench/README.md)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
