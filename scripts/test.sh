#!/usr/bin/env bash
# Sets everything up (system packages, npm reference packages), builds, and runs the whole test suite
# with ctest. Extra arguments go to ctest (e.g. -L unit, -R tokenizer). Tests labelled `slow` (long
# context, minutes each) run only with SHARDLM_TEST_SLOW=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
# Reference implementations the tests compare against (tokenizer, Jinja, OpenAI client).
(cd "$root/tests/support/node" && npm ci --no-audit --no-fund --loglevel=error)
(cd "$root/tests/support/openai" && npm ci --no-audit --no-fund --loglevel=error)
bash "$root/scripts/build.sh"
cd "$root/build"
if [ "${SHARDLM_TEST_SLOW:-0}" = 1 ]; then
  ctest --output-on-failure --timeout 3600 "$@"
else
  ctest --output-on-failure --timeout 900 -LE slow "$@"
fi
