# The two commands a new user needs: `make demo` and `make test`. Both set up .venv/ first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmdfkd-setup-done
SETUP_INPUTS := requirements.txt setup.py scripts/setup_env.sh scripts/build_mmcv.sh

.PHONY: setup test demo benchmarks clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	VENV=$(VENV) bash scripts/setup_env.sh

test: $(STAMP)
	TIMM_USE_NAFLEXVIT=0 $(PY) -m pytest tests

demo: $(STAMP)
	$(PY) tools/run_demo.py

# After `make demo` (they use its data and teacher): quality, speed, compactness, memory.
benchmarks: $(STAMP)
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/compactness.py
	$(PY) benchmarks/memory.py

clean:
	rm -rf work_dirs data/demo .pytest_cache
