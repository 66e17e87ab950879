# Two commands: `make run` (set up, then open MemLens on VGG-16) and `make test` (set up, then run
# every test). Setup is idempotent: the venv is rebuilt only when requirements.txt changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: setup
	$(VENV)/bin/python main.py $(ARGS)

test: setup
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/speed.py

clean:
	rm -rf $(VENV)
