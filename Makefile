# kalkan: `make demo` to try it, `make test` to check it. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= var/demo
DEMO_CONFIG := $(DEMO_DIR)/kalkan.yaml
DEMO_ADMIN ?= 127.0.0.1:8080

.PHONY: install demo demo-reset test lint bench system-deps clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

# A gateway with an embedded SQLite database, the demo school and unprivileged ports.
demo: install
	@mkdir -p $(DEMO_DIR)
	@test -f $(DEMO_CONFIG) || $(BIN)/kalkan init --demo --path $(DEMO_CONFIG) --data-dir $(DEMO_DIR)
	@$(BIN)/kalkan --config $(DEMO_CONFIG) db upgrade
	@$(BIN)/kalkan --config $(DEMO_CONFIG) demo
	@test -f $(DEMO_DIR)/blocklists/index.kbi || $(BIN)/kalkan --config $(DEMO_CONFIG) blocklists update
	@echo
	@echo "Try:  $(BIN)/kalkan --config $(DEMO_CONFIG) check bilimland.kz --client 10.10.1.101 --at 10:00"
	@echo "      $(BIN)/kalkan --config $(DEMO_CONFIG) session open --room lab1 --class 7B --teacher aigul"
	@echo "      $(BIN)/kalkan --config $(DEMO_CONFIG) policy export"
	@echo "Allowed names resolve through dns.upstreams in $(DEMO_CONFIG): the machine's own"
	@echo "local resolver if it has one; put your network's resolver there if not."
	@echo
	$(BIN)/kalkan --config $(DEMO_CONFIG) run --admin-listen $(DEMO_ADMIN)

demo-reset:
	rm -rf $(DEMO_DIR)

# Debian packages the tests use (PostgreSQL for the throw-away cluster); installed when missing.
system-deps:
	@bash .ci/system-deps

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/decide_bench.py

clean:
	rm -rf $(VENV) build *.egg-info var .pytest_cache
