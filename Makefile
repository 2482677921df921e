# Two entry points, each doing its own set-up (a local virtual environment with pinned packages):
#   make demo   - search → train → evaluate → export on the embedded data (CPU, minutes)
#   make test   - the test suite
#   make bench  - the headline benchmark: one search round of DARTS, CP-NAS and DCP-NAS (docs/RESULTS.md)
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
	$(PY) benchmarks/bench_search_round.py --C 8 --layers 5 --batch 32 --size 32 --repeats 5 --variants darts cpnas "dcpnas ggn"

clean:
	rm -rf $(VENV) build src/*.egg-info
