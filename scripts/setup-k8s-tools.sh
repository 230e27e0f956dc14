#!/usr/bin/env bash
# Set up .venv-k8s: the offline checking tools for k8s/ and spark-operator/ (kubernetes-validate,
# checkov, shellcheck, jsonschema), pinned in scripts/k8s-tools/ and kept apart from .venv so their
# pins never fight the product's. Idempotent: quick when the pins have not changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=.venv-k8s
REQ=scripts/k8s-tools/requirements.txt
CON=scripts/k8s-tools/constraints.txt

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "setup-k8s-tools: Python >= 3.11 required" >&2; exit 1; }
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
want=$(cat "$REQ" "$CON" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$VENV/.tickcast-k8s-tools" 2>/dev/null) != "$want" ]]; then
  echo "setup-k8s-tools: installing the k8s checking tools into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" -c "$CON"
  echo "$want" > "$VENV/.tickcast-k8s-tools"
fi
command -v kubectl >/dev/null 2>&1 \
  || echo "setup-k8s-tools: kubectl is not on PATH: tests/k8s need it to render the kustomize overlay" >&2
echo "setup-k8s-tools: ready ($VENV: kubernetes-validate, checkov, shellcheck, jsonschema)"
