#!/usr/bin/env bash
# Set up .venv-oip: stock Open Inference Protocol clients (KServe's and Triton's, from PyPI) for the
# protocol tests, pinned in scripts/oip-clients/ and kept apart from .venv so their pins never fight
# the product's. Idempotent: quick when the pins have not changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=.venv-oip
REQ=scripts/oip-clients/requirements.txt
CON=scripts/oip-clients/constraints.txt

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "setup-oip-clients: Python >= 3.11 required" >&2; exit 1; }
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
want=$(cat "$REQ" "$CON" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$VENV/.tickcast-oip-clients" 2>/dev/null) != "$want" ]]; then
  echo "setup-oip-clients: installing the stock Open Inference Protocol clients into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" -c "$CON"
  echo "$want" > "$VENV/.tickcast-oip-clients"
fi
echo "setup-oip-clients: ready ($VENV: kserve, tritonclient[http])"
