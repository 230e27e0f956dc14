#!/usr/bin/env bash
# The offline checkers of monitoring/ (idempotent, quick the second time), into .cache/monitoring:
#   - promtool (`check metrics`, `check rules`, `test rules`) from Debian's `prometheus` package,
#     unpacked without installing or running a Prometheus server;
#   - dashboard-check (monitoring/check): Grafana's foundation SDK decoding the board strictly and
#     Prometheus' PromQL parser reading its queries, built with Go.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest=.cache/monitoring
mkdir -p "$dest"

if [[ ! -x $dest/promtool ]]; then
  echo "setup: promtool from Debian's prometheus package"
  tmp=$(mktemp -d)
  ( cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; } )
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/x"
  cp "$tmp/x/usr/bin/promtool" "$dest/promtool"
  rm -rf "$tmp"
fi

want=$(cat monitoring/check/go.mod monitoring/check/go.sum monitoring/check/*.go | sha256sum | cut -d' ' -f1)
if [[ $(cat "$dest/.dashboard-check" 2>/dev/null) != "$want" || ! -x $dest/dashboard-check ]]; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  [[ -x $GO ]] || { echo "setup: Go is needed to build monitoring/check" >&2; exit 1; }
  echo "setup: building dashboard-check (Grafana foundation SDK + Prometheus' PromQL parser)"
  ( cd monitoring/check && "$GO" build -o "../../$dest/dashboard-check" . )
  echo "$want" > "$dest/.dashboard-check"
fi
echo "setup: monitoring tools ready ($("$dest/promtool" --version 2>&1 | head -1))"
