# The README's two commands, spelled as make targets.
.PHONY: run test lint

run:
	python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/graphnursery serve examples/echo.py

test:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest

lint:
	.venv/bin/pip install -q -e '.[dev]' && .venv/bin/ruff check src tests examples && .venv/bin/ruff format --check src tests examples && .venv/bin/mypy
