#!/usr/bin/env bash
# Makes the environment `make bench` compares l0 against: the official OpenAI instrumentation
# (opentelemetry-instrumentation-openai-v2) next to l0, in its own venv (.venv-bench-v2), because
# it only imports with opentelemetry-util-genai==1.1b0 (DESIGN §6), which the project's own
# environment must not be pinned to. Idempotent: a stamp records what was installed. Never
# fails: without it, overhead.py and instructions.py skip that variant and say why.
set -u
cd "$(dirname "$0")/.."
VENV=.venv-bench-v2
PINS="opentelemetry-instrumentation-openai-v2==2.4b0 opentelemetry-util-genai==1.1b0"
STAMP=$VENV/.installed
WANT="$PINS $(sha1sum pyproject.toml | cut -c1-12)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
    echo "ensure-bench-v2: $VENV is ready"
    exit 0
fi
echo "ensure-bench-v2: making $VENV (l0 + $PINS)..."
PY=${PY:-python3}
# shellcheck disable=SC2086  # PINS is a list of requirements
if "$PY" -m venv "$VENV" \
    && "$VENV/bin/python" -m pip install --quiet --upgrade pip \
    && "$VENV/bin/python" -m pip install --quiet -e '.[openai,otel]' $PINS \
    && "$VENV/bin/python" -c "import opentelemetry.instrumentation.openai_v2"; then
    echo "$WANT" > "$STAMP"
    echo "ensure-bench-v2: $VENV is ready"
else
    echo "ensure-bench-v2: could not make $VENV; the openai-v2 variant will be skipped"
fi
exit 0
