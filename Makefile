# Two commands set up a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned: its CPU wheel is local; any other torch pulls a CUDA build.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rr-installed
BROWSER_STAMP := tests/browser/node_modules/.rr-installed
REDIS_STAMP := $(VENV)/.rr-redis

# The embedded teacher's llama.cpp, built portably: llama-cpp-python's default build uses
# -march=native, which on CPUs with AMX selects kernels that trap (SIGILL) on this machine kind.
# One wheel for every x86-64 machine of the kind: AVX2, FMA, F16C, BMI2 (x86-64-v3), no AVX-512,
# no AMX. Built once from the PyPI source into a folder named by version and flags.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
	-DGGML_AMX_BF16=OFF
LLAMA_WHEELS := $(HOME)/.cache/rr/wheels/llama-cpp-python-$(LLAMA_VERSION)-x86-64-v3

.PHONY: demo test lint llama-portable

$(LLAMA_WHEELS)/.built:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	rm -rf $(LLAMA_WHEELS) && mkdir -p $(LLAMA_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip wheel --no-cache-dir --no-deps llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS)
	touch $@

# Rebuild and reinstall the portable wheel (e.g. on a machine whose venv has a native build).
llama-portable:
	rm -f $(LLAMA_WHEELS)/.built
	$(MAKE) $(LLAMA_WHEELS)/.built
	$(PY) -m pip install --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl

$(STAMP): pyproject.toml $(LLAMA_WHEELS)/.built
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(PY) -m pip install --find-links $(LLAMA_WHEELS) -e '.[dev]'
	touch $(STAMP)

# The browser test drives Debian's chromium with playwright-core (no browser download).
$(BROWSER_STAMP): tests/browser/package.json
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	cd tests/browser && npm ci --no-audit --no-fund
	touch $(BROWSER_STAMP)

# The distributed-executor test starts Debian's redis-server as the Celery broker (its own, on a free port).
$(REDIS_STAMP): $(STAMP)
	command -v redis-server >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server)
	touch $(REDIS_STAMP)

demo: $(STAMP)
	$(VENV)/bin/rr demo

lint: $(STAMP)
	$(VENV)/bin/ruff check rr_assets tests benchmarks

test: $(STAMP) $(BROWSER_STAMP) $(REDIS_STAMP) lint
	$(VENV)/bin/pytest
