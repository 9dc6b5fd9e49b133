# The README's commands. `make setup` builds .venv from the pinned lock; the others use it.
# `make setup GPU=1` on a CUDA machine: first checks the NVIDIA driver against the CUDA of the lock's torch,
# then installs the lock with requirements/lock-gpu.txt (onnxruntime-gpu in place of onnxruntime, and NVML's
# binding); GPU=0 goes back to the CPU lock. Unset, GPU keeps what the venv was set up with.
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

GPU ?= $(if $(wildcard $(VENV)/.installed-gpu),1,0)

.PHONY: setup browser results bench-lfw bench-speed gpu-check test lint clean

setup: $(VENV)/.installed$(if $(filter 1,$(GPU)),-gpu)

CHECK_PYTHON = $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make setup needs Python \
	3.11 or newer (requirements/lock.txt pins numpy 2.4, pandas 3.1, scipy 1.17, matplotlib 3.11); $(PYTHON) is \
	Python " + sys.version.split()[0] + ": give another with make setup PYTHON=python3.11")'
# $(call DROP_ORT_IF,PACKAGE): where the venv has PACKAGE (the other setup's ONNX Runtime), uninstall every
# ONNX Runtime wheel before installing: onnxruntime and onnxruntime-gpu are both the onnxruntime/ folder, so
# one installed over the other overwrites its files, and uninstalling either leaves the other broken
DROP_ORT_IF = if $(PY) -m pip show --quiet $(1) >/dev/null 2>&1; then for wheel in onnxruntime onnxruntime-gpu; do \
	if $(PY) -m pip show --quiet $$wheel >/dev/null 2>&1; then $(PY) -m pip uninstall --quiet --yes $$wheel; fi; \
	done; fi

# --no-deps: the lock lists every package at an exact version, so nothing is resolved (and
# facenet-pytorch's old torch pin cannot downgrade torch)
$(VENV)/.installed: requirements/lock.txt pyproject.toml
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	@$(call DROP_ORT_IF,onnxruntime-gpu)
	$(PY) -m pip install --quiet --no-deps -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-gpu
	touch $@

# the driver is checked before anything is installed; the list installed is lock.txt without onnxruntime,
# plus lock-gpu.txt (tools/gpu_setup.py writes it)
$(VENV)/.installed-gpu: requirements/lock.txt requirements/lock-gpu.txt tools/gpu_setup.py pyproject.toml
	@$(CHECK_PYTHON)
	$(PYTHON) tools/gpu_setup.py check-driver
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) tools/gpu_setup.py requirements $(VENV)/requirements-gpu.txt
	@$(call DROP_ORT_IF,onnxruntime)
	$(PY) -m pip install --quiet --no-deps -r $(VENV)/requirements-gpu.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed
	touch $@

# the headless browser of the browser tests (tests/browser.py): Debian's chromium and its chromedriver, from apt
# (selenium, in the lock, drives them; nothing is downloaded at test time). Needs root, so `make setup` does not
# run it; nothing to do where /usr/bin/chromedriver is there. CI runs it (.ci/run).
CHROMEDRIVER := /usr/bin/chromedriver
browser:
	@if [ -x $(CHROMEDRIVER) ] && [ -x /usr/bin/chromium ]; then echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" -eq 0 ]; then \
		for try in 1 2 3; do \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
				chromium chromium-driver && break; \
			[ $$try -lt 3 ] || exit 1; echo "make browser: apt failed, trying again"; sleep 10; \
		done; \
	else echo "make browser: $(CHROMEDRIVER) is missing; install Debian's chromium and chromium-driver as root:"; \
		echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium chromium-driver"; \
		echo "(or run sudo make browser); the browser tests skip without them"; exit 1; fi

# docs/RESULTS.md, its charts and docs/leaderboard.html from the recorded runs' copies in docs/results
results: setup
	$(PY) -m benchmark leaderboard $(sort $(wildcard docs/results/*)) --out docs --markdown-name RESULTS.md

bench-lfw: setup
	$(PY) -m benchmark --methods $(METHODS) --lfw-dir $(LFW_DIR) --weights-dir $(WEIGHTS_DIR) \
		$(if $(ALIGNED_DIR),--aligned-dir $(ALIGNED_DIR)) --out $(OUT) $(BENCH_ARGS)

# each stage's throughput and the embedder per backend/precision here, then a full LFW pass pipelined
# vs sequential, and with 1 and 2 detection replicas (SPEED_ARGS="--quick" for a check in seconds)
SPEED_ARGS ?=
bench-speed: setup
	$(PY) -m benchmark speed --lfw-dir $(LFW_DIR) --weights-dir $(WEIGHTS_DIR) \
		$(if $(ALIGNED_DIR),--aligned-dir $(ALIGNED_DIR)) $(SPEED_ARGS)

# the GPU workstation's check (benchmark/gpu_check.py): at most 8 minutes on 16 cores and one GPU, figures also in
# results/gpu-check/gpu_check.{json,md}; GPU_CHECK_ARGS="--device cpu" is the reduced run (under 2 minutes, no GPU)
GPU_CHECK_ARGS ?=
gpu-check: setup
	$(PY) -m benchmark.gpu_check --lfw-dir $(LFW_DIR) --weights-dir $(WEIGHTS_DIR) \
		$(if $(ALIGNED_DIR),--aligned-dir $(ALIGNED_DIR)) $(GPU_CHECK_ARGS)

# pytest's exit 5 ("no tests collected") fails like any other non-zero exit
test: setup
	FACEBENCH_SHARED=$(SHARED) $(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$status

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) results/lfw .pytest_cache
