# ML Fundamentals from Scratch: the two commands are `make book` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := _mathjax/mathjax/tex-chtml.js
# nbgrader and jupyter call helper programs by name: the virtualenv goes first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv mathjax book book-strict serve lab test test-lib test-notebooks \
        test-assignments test-site test-gpu release autograde gradescope clean workshop workshop-deps workshop-stop

help:
	@echo "make book       build the site into _build/html (executes every chapter)"
	@echo "make test       the whole suite: lib, chapters, assignments, site, browser"
	@echo "make test-gpu   on a CUDA machine: GPU flash tests + bench/results/attention_gpu.json (no pip)"
	@echo "make serve      serve _build/html on http://localhost:8000"
	@echo "make lab        JupyterLab on the chapters and assignments"
	@echo "make release    student versions of every assignment in dist/release and dist/release.zip"
	@echo "make autograde SUBMISSIONS=dir [JOBS=N]  grade dir/<student>/<assignment>/<assignment>.ipynb"
	@echo "make gradescope  dist/gradescope/<assignment>.zip: a Gradescope autograder per assignment"
	@echo "make workshop ROSTER=roster.csv  JupyterHub with the course on 127.0.0.1:8080 (as root)"
	@echo "make workshop-stop               stop it and every learner's server"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# MathJax comes from the npm registry at build time and is served by the site itself.
mathjax: $(MATHJAX)

$(MATHJAX):
	rm -rf .npm _mathjax
	npm install --silent --no-audit --no-fund --prefix .npm mathjax@$(MATHJAX_VERSION)
	mkdir -p _mathjax/mathjax
	cp -r .npm/node_modules/mathjax/es5/. _mathjax/mathjax/

# Chapters are executed in parallel into Jupyter Book's cache first; the strict build then
# only merges the stored outputs (a chapter that raises fails either step).
book: venv mathjax
	$(BIN)/python tools/execute_chapters.py
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

serve:
	@test -f _build/html/index.html || { echo "run 'make book' first"; exit 1; }
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

lab: venv
	$(BIN)/jupyter lab --notebook-dir=.

test: venv mathjax workshop-deps
	$(BIN)/pytest -n 2 --dist loadgroup tests --ignore=tests/test_site.py \
		--ignore=tests/test_without_triton.py
	$(BIN)/pytest -n 2 --dist loadscope --nbval-lax -p no:randomly chapters
	# its own step: it starts a kernel per chapter, which times out on a loaded machine
	$(BIN)/pytest -p no:randomly tests/test_without_triton.py
	$(BIN)/pytest tests/test_site.py

# The GPU tests and benchmark with whatever python/torch/triton the GPU machine has
# (no pip, no network): make test-gpu [GPU_PYTHON=python3]. Fails without CUDA.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
test-gpu:
	$(GPU_PYTHON) -c "import torch, sys; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'CUDA', ok); sys.exit(0 if ok else 'make test-gpu needs a CUDA GPU: torch.cuda.is_available() is False')"
	$(GPU_PYTHON) -m pytest -p no:randomly -p no:cacheprovider -q -rs tests/test_gpu_flash.py tests/test_lib_flash.py
	$(GPU_PYTHON) bench/attention.py --require-gpu --json bench/results/attention_gpu.json

release: venv
	$(BIN)/python -m grader.cli release --out dist

autograde: venv
	@test -n "$(SUBMISSIONS)" || { echo "usage: make autograde SUBMISSIONS=<folder>"; exit 2; }
	$(BIN)/python -m grader.cli autograde "$(SUBMISSIONS)" --out dist --jobs $(or $(JOBS),1)

# One Gradescope autograder per assignment (grader/gradescope.py; instructor guide).
gradescope: venv
	$(BIN)/python -m grader.gradescope build --out dist/gradescope

# The workshop's JupyterHub: its proxy comes from npm, the hub from requirements.txt.
CHP_VERSION := 5.3.0
CHP := .npm-hub/node_modules/.bin/configurable-http-proxy

workshop-deps: $(CHP)

$(CHP):
	npm install --silent --no-audit --no-fund --prefix .npm-hub configurable-http-proxy@$(CHP_VERSION)

workshop: venv workshop-deps
	@test -n "$(ROSTER)" || { echo "usage: make workshop ROSTER=roster.csv [PORT=8080]"; exit 2; }
	$(BIN)/python workshop/hub.py start --roster "$(ROSTER)" --port $(or $(PORT),8080)

workshop-stop:
	$(BIN)/python workshop/hub.py stop

clean:
	rm -rf _build dist .npm _mathjax .pytest_cache
