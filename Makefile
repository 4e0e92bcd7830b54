# One entry point for setup, data, training, export, the daemon and the tests.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
DATA := data
ARTIFACTS := artifacts
MODELS := models
OUT := out
export PYTHONHASHSEED := 0

.PHONY: setup lint format test data train export serve replay watch demo bench report clean

setup: $(VENV_STAMP)

# Reinstalls only when pyproject.toml changes; torch comes from its ==2.13.0 pin.
$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[edge,train,dev]'
	touch $@

lint: setup
	.venv/bin/ruff check .

format: setup
	.venv/bin/ruff format .

test: setup
	.venv/bin/pytest -q

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
