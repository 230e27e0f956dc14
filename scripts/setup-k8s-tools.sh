#!/usr/bin/env bash
# Set up .venv-k8s: the offline checking tools for k8s/ and spark-operator/ (kubernetes-validate,
# checkov, shellcheck, jsonschema), pinned in scripts/k8s-tools/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/tool-venv.sh
tool_venv setup-k8s-tools .venv-k8s scripts/k8s-tools
command -v kubectl >/dev/null 2>&1 \
  || echo "setup-k8s-tools: kubectl is not on PATH: tests/k8s need it to render the kustomize overlay" >&2
echo "setup-k8s-tools: ready (.venv-k8s: kubernetes-validate, checkov, shellcheck, jsonschema)"
