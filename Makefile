# The README's commands. `make setup` builds .venv from the pinned lock; the others use it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
# default data and weights: ../shared when it is there (tests, CI), else data/lfw and checkpoints/
LFW_DIR ?= $(if $(wildcard $(SHARED)/data/lfw),$(SHARED)/data/lfw,data/lfw)
WEIGHTS_DIR ?= $(if $(wildcard $(SHARED)/weights),$(SHARED)/weights,checkpoints)
ALIGNED_DIR ?= $(wildcard $(LFW_DIR)/aligned-112)
METHODS ?= all
OUT ?= results/lfw
BENCH_ARGS ?=

.PHONY: setup bench-lfw bench-speed test lint clean

setup: $(VENV)/.installed

# --no-deps: the lock lists every package at an exact version, so nothing is resolved (and
# facenet-pytorch's old torch pin cannot downgrade torch)
$(VENV)/.installed: requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make setup needs Python 3.11 or newer \
	(requirements/lock.txt pins numpy 2.4, pandas 3.1, scipy 1.17, matplotlib 3.11); $(PYTHON) is Python " \
	+ sys.version.split()[0] + ": give another with make setup PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

bench-lfw: setup
	$(PY) -m benchmark --methods $(METHODS) --lfw-dir $(LFW_DIR) --weights-dir $(WEIGHTS_DIR) \
		$(if $(ALIGNED_DIR),--aligned-dir $(ALIGNED_DIR)) --out $(OUT) $(BENCH_ARGS)

# each stage's throughput and the embedder per backend/precision here, then a full LFW pass pipelined
# vs sequential (SPEED_ARGS="--quick" for a check in seconds)
SPEED_ARGS ?=
bench-speed: setup
	$(PY) -m benchmark speed --lfw-dir $(LFW_DIR) --weights-dir $(WEIGHTS_DIR) \
		$(if $(ALIGNED_DIR),--aligned-dir $(ALIGNED_DIR)) $(SPEED_ARGS)

# pytest's exit 5 ("no tests collected") fails like any other non-zero exit
test: setup
	FACEBENCH_SHARED=$(SHARED) $(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$status

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) results/lfw .pytest_cache
