#!/usr/bin/env bash
# Bring tickcast up on minikube, from scratch or from a paused cluster (volumes, tables and
# checkpoints are kept; the streams continue from their checkpoints).
#
# Usage: k8s/up.sh [--rebuild] [--ports-only] [--cpus N] [--memory SIZE] [--help]
#   --rebuild     rebuild every image even if minikube already has it
#   --ports-only  only (re)start the port-forwards and print the URLs
#   --cpus N      CPUs of a new minikube (default 6)
#   --memory SIZE memory of a new minikube (default 14g)
#
# Steps: check the tools (minikube, kubectl, helm, docker); start minikube (profile `tickcast`,
# Calico so NetworkPolicies hold, metrics-server for the serving HPA); generate the Secrets once
# (never written to disk); install Strimzi and the Spark Operator (pinned chart versions); build
# the images inside minikube; apply k8s/overlays/minikube (infrastructure first, then the Spark
# applications); wait for readiness; port-forward fixed local URLs.
# shellcheck source=k8s/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
REBUILD=0 PORTS_ONLY=0 CPUS=6 MEMORY=14g
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --rebuild) REBUILD=1 ;;
    --ports-only) PORTS_ONLY=1 ;;
    --cpus) CPUS=${2:?--cpus needs a number}; shift ;;
    --memory) MEMORY=${2:?--memory needs a size}; shift ;;
    *) say "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

require minikube kubectl helm docker

print_urls() {
  say "local URLs (port-forwards; stop them with k8s/down.sh):"
  start_port_forwards
  echo "  MinIO console user:     kubectl -n $NS get secret minio-root -o jsonpath='{.data.MINIO_ROOT_USER}' | base64 -d"
  echo "  MinIO console password: kubectl -n $NS get secret minio-root -o jsonpath='{.data.MINIO_ROOT_PASSWORD}' | base64 -d"
  echo "  status: k8s/status.sh"
}

if ((PORTS_ONLY)); then
  cluster_running || die "minikube profile $PROFILE is not running: run k8s/up.sh"
  print_urls; exit 0
fi

# 1. The cluster.
if minikube profile list -o json 2>/dev/null | grep -q "\"Name\":\"$PROFILE\""; then
  say "starting the existing minikube profile $PROFILE (volumes kept)"
  minikube -p "$PROFILE" start
else
  say "creating minikube profile $PROFILE ($CPUS CPUs, $MEMORY)"
  minikube -p "$PROFILE" start --cpus "$CPUS" --memory "$MEMORY" --disk-size 40g \
    --container-runtime docker --cni calico
fi
minikube -p "$PROFILE" addons enable metrics-server >/dev/null
minikube -p "$PROFILE" addons enable storage-provisioner >/dev/null
kubectl config use-context "$PROFILE" >/dev/null

# 2. Namespace and Secrets (generated once, kept in the cluster only; real clusters: README).
kubectl --context "$PROFILE" get namespace "$NS" >/dev/null 2>&1 \
  || kubectl --context "$PROFILE" create namespace "$NS"
random() { LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32; }
if ! kc get secret minio-root >/dev/null 2>&1; then
  say "generating Secret minio-root"
  kc create secret generic minio-root \
    --from-env-file=<(printf 'MINIO_ROOT_USER=%s\nMINIO_ROOT_PASSWORD=%s\n' "admin-$(random | head -c 6)" "$(random)")
fi
if ! kc get secret tickcast-s3 >/dev/null 2>&1; then
  say "generating Secret tickcast-s3"
  kc create secret generic tickcast-s3 \
    --from-env-file=<(printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "tickcast-$(random | head -c 6)" "$(random)")
fi

# 3. Operators.
say "installing Strimzi $STRIMZI_CHART_VERSION (watching $NS)"
helm --kube-context "$PROFILE" upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
  --version "$STRIMZI_CHART_VERSION" --namespace strimzi --create-namespace \
  --set "watchNamespaces={$NS}" \
  --set-json 'extraEnvs=[{"name":"STRIMZI_POD_SECURITY_PROVIDER_CLASS","value":"restricted"}]' \
  --wait --timeout 10m >/dev/null
"$ROOT/spark-operator/install.sh"

# 4. Images, built by minikube's Docker daemon.
for image in tickcast-spark tickcast-app tickcast-mlflow tickcast-serving tickcast-dashboard; do
  if ((REBUILD)) || ! image_present "$image"; then build_image "$image" || true; fi
done

# 5. Apply: infrastructure, then (once Kafka and the bucket are ready) the Spark applications.
kc delete job minio-buckets --ignore-not-found >/dev/null     # re-run the idempotent bucket job
say "applying k8s/overlays/minikube (infrastructure)"
kubectl --context "$PROFILE" apply -k "$OVERLAY" -l 'tickcast.io/tier!=spark' >/dev/null
for deploy in serving dashboard; do
  if ! image_present "tickcast-$deploy"; then
    say "$deploy: no image yet, kept at 0 replicas"; kc scale deployment "$deploy" --replicas=0 >/dev/null
  fi
done
say "waiting for MinIO, the bucket, MLflow and Kafka"
kc rollout status deployment/minio --timeout=10m
kc wait --for=condition=complete job/minio-buckets --timeout=10m
kc rollout status deployment/mlflow --timeout=10m
kc wait --for=condition=Ready kafka/tickcast --timeout=15m
kc wait --for=condition=Ready kafkatopic/ticks --timeout=5m
say "applying the Spark applications"
kubectl --context "$PROFILE" apply -k "$OVERLAY" -l 'tickcast.io/tier=spark,tickcast.io/live-path!=stages' >/dev/null
say "waiting for the streaming jobs to run"
deadline=$((SECONDS + 900))
while :; do
  states=$(spark_app_states)
  running=$( (grep -o '=RUNNING' <<< "$states" || true) | wc -l | tr -d ' ')
  printf '\r  %s' "$states"
  [[ $running -ge 3 ]] && break
  ((SECONDS < deadline)) || { echo; say "not all streaming jobs are RUNNING yet: see k8s/status.sh"; break; }
  sleep 10
done
echo
print_urls
