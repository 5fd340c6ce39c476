# Two commands set up a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned: its CPU wheel is local; any other torch pulls a CUDA build.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rr-installed
BROWSER_STAMP := tests/browser/node_modules/.rr-installed

.PHONY: demo test

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

# The browser test drives Debian's chromium with playwright-core (no browser download).
$(BROWSER_STAMP): tests/browser/package.json
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	cd tests/browser && npm ci --no-audit --no-fund
	touch $(BROWSER_STAMP)

demo: $(STAMP)
	$(VENV)/bin/rr demo

test: $(STAMP) $(BROWSER_STAMP)
	$(VENV)/bin/pytest
