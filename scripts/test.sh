#!/usr/bin/env bash
# Installs what the test suite needs (Debian's chromium, redis-server and nginx; the package with
# its test extras in the project's venv, .venv, made by scripts/venv.sh) and runs the linter and
# the whole suite in that venv. Extra arguments go to pytest.
#
# The suite runs in TEST_WORKERS pytest-xdist processes (default 3 on this project's 2-core
# machines), a test file to a process (--dist loadfile: a file's module-scoped servers are
# started once, its tests run in order), the longest files first (tests/conftest.py). Most of its
# time is spent waiting on emulated modules, servers and browsers, not computing, hence more
# processes than cores. TEST_WORKERS=0 runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start on loopback: chromium (browser tests), redis-server (the
# message queue between the engine and the web processes), nginx (the reverse proxy in front).
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/redis-server ] || missing="$missing redis-server"
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

bash scripts/venv.sh test
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m pytest -n "${TEST_WORKERS:-3}" --dist loadfile "$@"
