#!/usr/bin/env bash
# Pause or remove tickcast's minikube cluster.
#
# Usage: k8s/down.sh --pause | --delete [--yes] | --help
#   --pause   stop the cluster, keeping every volume (tables, checkpoints, Kafka log, MLflow);
#             k8s/up.sh resumes it and the streams continue from their checkpoints
#   --delete  delete the cluster and all its data (asks first unless --yes)
# shellcheck source=k8s/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
ACTION="" YES=0
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --pause|--delete) ACTION=$1 ;;
    --yes) YES=1 ;;
    *) say "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ -n $ACTION ]] || { usage >&2; exit 2; }
require minikube

stop_port_forwards
case "$ACTION" in
  --pause)
    say "stopping minikube profile $PROFILE (volumes kept; k8s/up.sh resumes)"
    minikube -p "$PROFILE" stop
    ;;
  --delete)
    if ((!YES)); then
      [[ -t 0 ]] || die "refusing to delete without a terminal: pass --yes"
      read -r -p "Delete minikube profile $PROFILE and ALL its data (tables, Kafka, MLflow)? [y/N] " answer
      [[ $answer == [yY]* ]] || { say "nothing deleted"; exit 0; }
    fi
    minikube -p "$PROFILE" delete
    say "deleted"
    ;;
esac
