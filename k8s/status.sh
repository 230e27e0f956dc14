#!/usr/bin/env bash
# Show tickcast on minikube: pods, SparkApplication states, Kafka (topic end offsets and the
# ingest stream's lag from ops.stream_progress), and the port-forwarded URLs.
#
# Usage: k8s/status.sh [--help]
# shellcheck source=k8s/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) say "unknown argument: $1" >&2; exit 2 ;;
esac
require minikube kubectl
cluster_running || die "minikube profile $PROFILE is not running (k8s/up.sh starts or resumes it)"

echo "== pods"
kc get pods -o wide
echo; echo "== Spark applications"
kc get sparkapplications,scheduledsparkapplications 2>/dev/null || echo "(Spark Operator CRDs not installed)"
echo; echo "== Kafka"
kc get kafka,kafkanodepool,kafkatopic 2>/dev/null || echo "(Strimzi CRDs not installed)"
echo; echo "== topic ticks: end offsets (partition:offset)"
kc exec tickcast-dual-0 -c kafka -- /opt/kafka/bin/kafka-get-offsets.sh \
  --bootstrap-server localhost:9092 --topic ticks 2>/dev/null || echo "(broker not reachable)"
echo; echo "== stream lag (records behind the topic's end, from ops.stream_progress)"
# Spark keeps its Kafka offsets in the checkpoint, not in a consumer group: the lag is what each
# query's last progress recorded. Read with delta-rs inside the ingest driver (it has the keys).
kc exec ingest-driver -- python - <<'PY' 2>/dev/null || echo "(ingest driver not running, or no progress yet)"
from deltalake import DeltaTable
from tickcast import tables
from tickcast.settings import load
path = tables.STREAM_PROGRESS.path(load()).replace("s3a://", "s3://", 1)
df = DeltaTable(path, storage_options={"AWS_ENDPOINT_URL": "http://minio.tickcast.svc:9000",
                                       "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}).to_pandas(
    columns=["query_name", "timestamp", "batch_id", "lag", "processed_rows_per_second"])
last = df.sort_values("timestamp").groupby("query_name").tail(1)
print(last.to_string(index=False))
PY
echo; echo "== port-forwards"
if [[ -f $PF_PIDS ]]; then
  alive=0
  while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done < "$PF_PIDS"
  echo "$alive running; restart them with k8s/up.sh --ports-only"
else
  echo "none; start them with k8s/up.sh --ports-only"
fi
