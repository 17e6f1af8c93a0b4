#!/usr/bin/env bash
# Installs the project and its test tools into .venv, then runs lint, types, policy tests and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,bench]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pdp validate policies
.venv/bin/pdp test --min-coverage 95 policies
.venv/bin/pdp fmt --check policies
.venv/bin/pdp lint policies
.venv/bin/python -m pytest -q
