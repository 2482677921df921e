# Two entry points, each doing its own set-up (a local virtual environment with pinned packages):
#   make demo   - search → train → evaluate → export on the embedded data (CPU, minutes)
#   make test   - the test suite
#   make memcheck - the CPU paths under valgrind memcheck, host ISA and AVX2 (needs valgrind; CI runs it)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?=

.PHONY: demo test bench memcheck setup clean

$(STAMP): requirements.lock pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dcpnas demo $(if $(OUT),--out $(OUT))

test: $(STAMP)
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

memcheck: $(STAMP)
	$(PY) scripts/memcheck.py

bench: $(STAMP)
	$(PY) benchmarks/bench_search_step.py

clean:
	rm -rf $(VENV) build src/*.egg-info
