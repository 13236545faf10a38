# dockyard: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test test-dockerd-restart test-deps venv compiled docker images lint bench bench-quick bench-restart bench-tls dist clean

# The editable install puts the checkout on sys.path with a plain .pth line (setuptools' "compat"
# mode) rather than its import hook, which every Python start in the venv paid before anything
# else could run: 16.5 -> 8 ms of CPU for `python -c pass`, spent by each `dockyard deploy` before
# it can lower its priority (issue #19). Setuptools calls the mode transitional; if a release
# drops it, the default editable install follows.
$(VENV)/.installed: pyproject.toml
	bash scripts/ensure-python-venv.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'  # proxy.build's mypyc setup() reads pyproject.toml
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat \
	  || $(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The proxy compiled with mypyc (proxy/compiled.py): built when missing or older than its sources;
# without a C compiler and Python headers it says so and the proxy stays pure Python.
# Then the bytecode of our packages, as `pip install` writes it for an installed package: the
# editable install's modules are otherwise compiled from source at every start wherever
# PYTHONDONTWRITEBYTECODE is set (CI machines): ~10 ms more CPU for each `dockyard` command.
compiled: venv
	$(PY) -m proxy.build ensure
	$(PY) -m compileall -q supervisor proxy scheduler bench

# System packages the tests and benches use (nginx, wrk, git, pebble, debootstrap, gcc, Python headers).
test-deps:
	bash scripts/ensure-test-deps.sh $(PYTHON)

# Make sure a Docker engine answers (installs Debian's docker.io and starts dockerd when needed).
docker:
	bash scripts/ensure-docker.sh

images: venv docker
	$(PY) -m bench.images

## Run the demo: set up, build the demo image, serve configs/demo.toml on 127.0.0.1:8080.
demo: venv compiled docker images
	$(VENV)/bin/dockyard serve -c configs/demo.toml

## ruff, mypy, and the architecture: the import-linter contracts (.importlinter) and no cycles.
lint: venv
	$(VENV)/bin/ruff check supervisor proxy scheduler bench tests scripts
	$(VENV)/bin/mypy supervisor proxy scheduler tests/fakes.py
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/check_cycles.py

## Run the whole test suite (unit tests and the ones against a real Docker engine).
test: test-deps venv compiled docker lint
	$(PY) -m pytest -q
	DOCKYARD_NO_EXTENSIONS=1 $(PY) -m pytest -q tests/proxy tests/tls
	$(MAKE) test-dockerd-restart

## Restarts the shared dockerd: alone and last (other tests using the engine meanwhile break).
test-dockerd-restart: venv docker
	DOCKYARD_TEST_DOCKERD_RESTART=1 $(PY) -m pytest -q -m dockerd_restart tests/supervisor/test_dockerd_restart.py

bench: test-deps venv compiled docker
	$(PY) -m bench swap

bench-quick: test-deps venv compiled docker
	$(PY) -m bench swap --quick

bench-restart: test-deps venv compiled docker
	$(PY) -m bench restart

bench-tls: test-deps venv compiled
	$(PY) -m bench.tls

## Single-file build: dist/dockyard.pyz (stdlib zipapp; needs the dependencies installed, see docs/operations.md)
dist: venv
	$(PY) -m supervisor.cli.pyz -o dist/dockyard.pyz

clean:
	rm -rf $(VENV) .dockyard dist build *.egg-info proxy/*.so 
