# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test venv dev lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	# torch first: a bare `torch` requirement may pull a multi-GB CUDA build.
	$(BIN)/pip install -q $(TORCH_SPEC)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/activate pyproject.toml
	# the export extra (hls4ml, qonnx) must not replace the pinned torch
	echo '$(TORCH_SPEC)' > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q -c $(VENV)/torch-constraint.txt -e '.[dev,export,postgres,jsc,dashboard]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-export

# the demo ends with an hls4ml and QONNX export (the export extra; g++ for the C simulation)
$(VENV)/.installed-export: $(VENV)/.installed
	echo '$(TORCH_SPEC)' > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q -c $(VENV)/torch-constraint.txt -e '.[export]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed-export
	$(BIN)/quantsearch demo

lint: dev
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy
	# No import cycle between project modules, no module over 450 lines.
	$(BIN)/python tools/check_imports.py src/quantsearch

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
