# Two commands: `make run` (set up, then open MemLens on VGG-16) and `make test` (set up, then run
# every test). Setup is idempotent: the venv is rebuilt only when requirements.txt changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: setup run test test-fast fuzz bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# `make run` always opens on VGG-16 (the window alone reopens the last model); ARGS replaces it.
ARGS ?= --model vgg16
run: setup
	$(VENV)/bin/python main.py $(ARGS)

# Test files run side by side (pytest-xdist), one file to a worker so that a module's fixtures are
# built once: one worker per core, at most 4 (each holds its own torch). TEST_JOBS=0 runs in-process.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
XDIST := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

test: setup
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the measured-truth comparisons that run real steps (`slow`).
test-fast: setup
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

# The spec fuzzer at length (tests/engine/test_fuzz_spec.py): 2,500 examples per property,
# 10,000 in all. Replay a run with `make fuzz SEED=<the printed seed>`.
FUZZ_EXAMPLES ?= 2500
fuzz: setup
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "fuzz seed $$seed"; \
	MEMLENS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -s \
		-p no:cacheprovider tests/engine/test_fuzz_spec.py --hypothesis-seed=$$seed

bench: setup
	$(VENV)/bin/python benchmarks/speed.py

clean:
	rm -rf $(VENV)
