#!/usr/bin/env bash
# Rebuild one component's image inside minikube and roll it; data and checkpoints are kept
# (they live on MinIO's volume), so a stream continues from its checkpoint.
#
# Usage: k8s/update.sh ingest|bars|features|serving|dashboard|producer [--help]
#   ingest, bars, features   rebuild the Spark image, then resubmit that SparkApplication only
#                            (the others keep running their current image until they restart)
#   serving, dashboard       rebuild the image and roll the Deployment
#   producer                 rebuild the app image and roll the producer Deployment
# shellcheck source=k8s/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  ingest|bars|features|serving|dashboard|producer) COMPONENT=$1 ;;
  "") usage >&2; exit 2 ;;
  *) say "unknown component: $1" >&2; usage >&2; exit 2 ;;
esac
require minikube kubectl docker
cluster_running || die "minikube profile $PROFILE is not running: run k8s/up.sh first"

case "$COMPONENT" in
  ingest|bars|features)
    build_image tickcast-spark
    say "resubmitting SparkApplication $COMPONENT (its query resumes from the checkpoint)"
    kc delete sparkapplication "$COMPONENT" --ignore-not-found --wait=true
    kubectl --context "$PROFILE" apply -k "$OVERLAY" -l 'tickcast.io/tier=spark,tickcast.io/live-path!=stages' >/dev/null
    deadline=$((SECONDS + 600))
    until [[ $(kc get sparkapplication "$COMPONENT" -o jsonpath='{.status.applicationState.state}' 2>/dev/null) == RUNNING ]]; do
      ((SECONDS < deadline)) || die "$COMPONENT is not RUNNING after 10 minutes: see k8s/status.sh"
      sleep 5
    done
    say "$COMPONENT is RUNNING"
    ;;
  serving|dashboard|producer)
    image=tickcast-$COMPONENT
    [[ $COMPONENT == producer ]] && image=tickcast-app
    build_image "$image" || exit 1
    if [[ $(kc get deployment "$COMPONENT" -o jsonpath='{.spec.replicas}') == 0 ]]; then
      kc scale deployment "$COMPONENT" --replicas=1
    fi
    kc rollout restart deployment "$COMPONENT"
    kc rollout status deployment "$COMPONENT" --timeout=10m
    ;;
esac
