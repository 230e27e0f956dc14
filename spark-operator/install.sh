#!/usr/bin/env bash
# Install (or upgrade) the kubeflow Spark Operator with tickcast's pinned chart version and values.
# Usage: spark-operator/install.sh [--help]
# Needs helm and kubectl pointed at the target cluster; the tickcast namespace must exist (the
# chart binds the operator to it: spark.jobNamespaces in values.yaml).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHART_VERSION=2.5.2          # = kubeflow/spark-operator v2.5.2, the CRDs tests/k8s validate against
RELEASE=spark-operator
NAMESPACE=spark-operator
JOB_NAMESPACE=tickcast

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac
missing=()
for tool in helm kubectl; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "install.sh: missing: ${missing[*]} (see the README's Kubernetes section)" >&2; exit 1
fi
kubectl get namespace "$JOB_NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$JOB_NAMESPACE"
helm repo add spark-operator https://kubeflow.github.io/spark-operator >/dev/null 2>&1 || true
helm repo update spark-operator >/dev/null
helm upgrade --install "$RELEASE" spark-operator/spark-operator \
  --version "$CHART_VERSION" --namespace "$NAMESPACE" --create-namespace \
  --values "$HERE/values.yaml" --wait --timeout 10m
echo "install.sh: Spark Operator chart $CHART_VERSION ready in namespace $NAMESPACE, watching $JOB_NAMESPACE"
