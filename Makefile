# The quick start: `make demo` and `make test` create the virtual environment on first use
# (.ci/install: the constraints file, then ImageBind's classes without their dependencies).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.javisbench-installed
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled

.PHONY: demo test env

demo: $(STAMP)
	$(VENV)/bin/javisbench demo

test: $(STAMP)
	$(OFFLINE) $(VENV)/bin/python -m pytest -q tests

env: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt .ci/install
	VENV=$(VENV) PYTHON=$(PYTHON) .ci/install
