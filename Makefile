# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-all bench clean

setup:
	@bash scripts/setup_env.sh

## Set up, then run the out-of-the-box demo (writes demo_output/).
demo: setup
	$(PY) -m dna_depth_ros.demo --output-dir demo_output

## Set up, then run the CI test suite (slow tests excluded; `make test-all` includes them).
test: setup
	$(PY) -m pytest -q --durations=15

test-all: setup
	$(PY) -m pytest -q -m "" --durations=15

clean:
	rm -rf $(VENV) demo_output build install log *.egg-info
