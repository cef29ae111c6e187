#!/usr/bin/env bash
# Creates (or updates) the project's virtual environment in .venv and installs the package into
# it, with the extras given (e.g. `bash scripts/venv.sh test`). A fresh Debian python refuses a
# system-wide pip install (PEP 668), and a venv keeps the project's packages apart from the
# system's. On Debian the venv module comes in python3-venv, installed here when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "scripts/venv.sh: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
        version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python$version-venv" >/dev/null
        "$PYTHON" -m venv .venv
    fi
fi
extras="${1:-}"
target="."
[ -n "$extras" ] && target=".[$extras]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
