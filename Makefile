# Both targets create their own virtual environment and install everything they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test fuzz data bench clean

# torch is pinned to the local CPU build and installed first, so the package's torch range
# is already satisfied and pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist; best effort (needs root and apt).
data:
	@if [ ! -f $(FMNIST) ]; then \
	  (apt-get update -q && apt-get install -y -q dataset-fashion-mnist) >/dev/null 2>&1 \
	  || echo "note: could not apt-get install dataset-fashion-mnist; data-dependent tests will skip"; \
	fi

demo: $(STAMP)
	$(VENV)/bin/earlyq-sim run --arch stripes --out out/demo

test: $(STAMP) data
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2 tests

# the property tests with fresh random draws (the suite's own draws are fixed; see tests/conftest.py)
fuzz: $(STAMP) data
	HYPOTHESIS_PROFILE=explore HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2 tests -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache
