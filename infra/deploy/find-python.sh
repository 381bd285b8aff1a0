#!/usr/bin/env sh
# Prints a python3.12 interpreter: on PATH, else the newest 3.12 that pyenv knows. `sam build`
# builds the python3.12 functions with it, and the emulator runs the handlers with it.
set -eu
if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys' >/dev/null 2>&1; then
  command -v python3.12; exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$' | tail -1 || true)
  if [ -n "$v" ]; then PYENV_VERSION="$v" pyenv which python3.12; exit 0; fi
fi
echo "python3.12 not found (install it, or set PYTHON312=/path/to/python3.12)" >&2
exit 1
