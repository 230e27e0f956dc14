# shellcheck shell=bash
# Sourced by the setup-*.sh scripts: build or refresh one pinned tool venv, kept apart from .venv so
# its pins never fight the product's. Idempotent: quick when the pins have not changed.
# Usage: tool_venv NAME VENV DIR   (DIR holds requirements.txt and constraints.txt)
tool_venv() {
  local name=$1 venv=$2 dir=$3 py=${PYTHON:-python3}
  "$py" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "$name: Python >= 3.11 required" >&2; return 1; }
  [[ -x $venv/bin/python ]] || "$py" -m venv "$venv"
  local want
  want=$(cat "$dir/requirements.txt" "$dir/constraints.txt" | sha256sum | cut -d' ' -f1)
  if [[ $(cat "$venv/.tickcast-pins" 2>/dev/null) != "$want" ]]; then
    echo "$name: installing the pinned tools into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements.txt" -c "$dir/constraints.txt"
    echo "$want" > "$venv/.tickcast-pins"
  fi
}
