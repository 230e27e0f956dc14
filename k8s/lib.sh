# shellcheck shell=bash
# Shared by k8s/up.sh, update.sh, down.sh and status.sh (sourced, not run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=tickcast                 # the minikube profile, also the kubectl context
NS=tickcast
# shellcheck disable=SC2034  # OVERLAY, STRIMZI_CHART_VERSION: used by the scripts that source this
OVERLAY="$ROOT/k8s/overlays/minikube"
# shellcheck disable=SC2034
STRIMZI_CHART_VERSION=1.2.0      # = the Strimzi release whose CRD schemas tests/k8s validate against
PF_PIDS="${XDG_RUNTIME_DIR:-/tmp}/tickcast-k8s-port-forwards.pids"
# Fixed local URLs: local port -> service:port.
PORT_FORWARDS=("18000 serving 8000" "18050 dashboard 8050" "15000 mlflow 5000" "19001 minio 9001")

say() { printf '%s: %s\n' "$(basename "$0")" "$*"; }
die() { say "$*" >&2; exit 1; }
kc() { kubectl --context "$PROFILE" -n "$NS" "$@"; }

# Image name -> "Dockerfile [target]" (built with the repo root as context; .dockerignore keeps it small).
image_dockerfile() {
  case "$1" in
    tickcast-spark) echo spark-operator/image/Dockerfile ;;
    tickcast-app) echo k8s/images/app/Dockerfile app ;;
    tickcast-mlflow) echo k8s/images/mlflow/Dockerfile ;;
    tickcast-serving) echo k8s/images/serving/Dockerfile ;;
    tickcast-dashboard) echo k8s/images/app/Dockerfile dashboard ;;
    *) return 1 ;;
  esac
}

require() {
  local missing=() tool
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  if ((${#missing[@]})); then
    say "missing: ${missing[*]}" >&2
    for tool in "${missing[@]}"; do
      case "$tool" in
        minikube) echo "  minikube: https://minikube.sigs.k8s.io/docs/start/" >&2 ;;
        kubectl) echo "  kubectl: https://kubernetes.io/docs/tasks/tools/ (or: minikube kubectl)" >&2 ;;
        helm) echo "  helm 3: https://helm.sh/docs/intro/install/" >&2 ;;
        docker) echo "  docker: the images are built by minikube's Docker daemon with your docker CLI" >&2 ;;
      esac
    done
    exit 1
  fi
}

cluster_running() { minikube -p "$PROFILE" status --format '{{.APIServer}}' 2>/dev/null | grep -q Running; }

# Run a command with the docker CLI talking to minikube's Docker daemon.
with_minikube_docker() { ( eval "$(minikube -p "$PROFILE" docker-env --shell bash)"; "$@" ); }

image_present() { with_minikube_docker docker image inspect "$1:dev" >/dev/null 2>&1; }

build_image() {
  local name=$1 dockerfile target spec
  spec=$(image_dockerfile "$name") || die "no such image: $name"
  read -r dockerfile target <<< "$spec"
  [[ -f "$ROOT/$dockerfile" ]] || { say "$name: $dockerfile does not exist yet (it arrives with its issue): not built"; return 1; }
  say "building $name:dev inside minikube from $dockerfile${target:+ (target $target)} (the first build takes a while)"
  (cd "$ROOT" && with_minikube_docker docker build -t "$name:dev" ${target:+--target "$target"} -f "$dockerfile" .)
}

stop_port_forwards() {
  [[ -f "$PF_PIDS" ]] || return 0
  local pid
  while read -r pid; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  done < "$PF_PIDS"
  rm -f "$PF_PIDS"
}

start_port_forwards() {
  stop_port_forwards
  local entry local_port svc port ready
  for entry in "${PORT_FORWARDS[@]}"; do
    read -r local_port svc port <<< "$entry"
    ready=$(kc get endpointslices -l "kubernetes.io/service-name=$svc" \
      -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}' 2>/dev/null || true)
    if [[ -z "$ready" ]]; then
      printf '  %-10s not running (no ready pod yet)\n' "$svc"; continue
    fi
    nohup kubectl --context "$PROFILE" -n "$NS" port-forward "svc/$svc" "$local_port:$port" \
      >/dev/null 2>&1 &
    echo $! >> "$PF_PIDS"
    printf '  %-10s http://localhost:%s\n' "$svc" "$local_port"
  done
}

spark_app_states() {
  kc get sparkapplications -o jsonpath='{range .items[*]}{.metadata.name}={.status.applicationState.state}{" "}{end}' 2>/dev/null || true
}
