# VoxDesk — the two commands in the README:
#   make run    set up everything (system packages, venv, models) and start the app
#   make test   set up everything and run the whole test suite (what CI runs)
# Python 3.11 or newer: python3.11 where installed, else the system python3 (checked below).
PYTHON ?= $(shell command -v python3.11 || command -v python3 || echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-10)
export PIP_DISABLE_PIP_VERSION_CHECK=1
# llama-cpp-python compiles from source (no wheel on the index): pip caches the wheel
# it builds, so this happens once per machine. Use both cores.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
# Build llama.cpp for x86-64-v3 (AVX2, FMA, F16C), not for this machine's CPU: a native
# build on a Xeon with AMX crashed in its first decode (AMX kernels, SIGSEGV), and the
# installers must run on the laptops they are copied to. pip's cache is keyed by the
# sdist only: after changing these, reinstall with --no-cache-dir.
ifeq ($(shell uname -m),x86_64)
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
endif

.PHONY: run test setup setup-test lint package package-full clean

run: setup
	$(BIN)/voxdesk

setup: $(STAMP)
$(STAMP): pyproject.toml
	packaging/linux/system-deps.sh run
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "Python 3.11 or newer is needed: sudo apt-get install python3.11 python3.11-venv (or run: make run PYTHON=/path/to/python3.11)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip wheel setuptools
	$(BIN)/pip install -q -e '.[all,dev,package]'
	# The Smart Turn model (BSD-2) ships inside the pipecat-ai wheel: installed for that
	# one data file, without pipecat's own dependencies (nothing of it is imported).
	$(BIN)/pip install -q --no-deps 'pipecat-ai==1.14.0'
	rm -f $(VENV)/.installed-* && touch $@

setup-test: setup
	packaging/linux/system-deps.sh test

lint: setup
	$(BIN)/ruff check app ui providers tests
	$(BIN)/ruff format --check app ui providers tests
	$(BIN)/mypy

test: setup-test lint
	bash tests/run_tests.sh

package: setup-test  ## Linux lite bundle + tarball + .deb in packaging/dist/
	packaging/build_linux.sh --variant lite

package-full: setup-test  ## the same with the offline models inside
	packaging/build_linux.sh --variant full

clean:
	rm -rf $(VENV) build dist packaging/build packaging/dist .pytest_cache .mypy_cache .ruff_cache
