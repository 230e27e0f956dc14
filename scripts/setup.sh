#!/usr/bin/env bash
# Set up everything tickcast needs, from scratch or incrementally (idempotent, quick the second time):
#   - Python packages pinned in requirements.txt (their dependencies in constraints.txt) into .venv at the repo root, tickcast installed editable;
#   - JVM artifacts from Maven Central (resolved by Maven into its local repository, copied to .cache/jars):
#     Spark's Kafka connector and Delta Lake for the exact Spark version (added to pyspark's jars folder,
#     so a plain SparkSession and `spark-submit` both find them), and Apache Kafka's broker jars.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PYTHON:-python3}

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if [[ $(id -u) == 0 ]] && need apt-get; then
    echo "setup: installing $* with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: please install $* (Java 17 and Maven are required)" >&2; exit 1
  fi
}
need java || apt_install openjdk-17-jre-headless
need mvn || apt_install maven
# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser download is not used).
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || ( apt_install chromium chromium-driver ) || \
  echo "setup: chromium could not be installed; the browser tests will skip and say why" >&2
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || { echo "setup: Python >= 3.11 required" >&2; exit 1; }

# 1. Python
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
want=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ $(cat .venv/.tickcast-setup 2>/dev/null) != "$want" ]]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q -r requirements.txt -c constraints.txt
  .venv/bin/pip install -q --no-deps -e .
  echo "$want" > .venv/.tickcast-setup
fi

# 2. JVM artifacts
jwant=$(cat jvm/pom.xml jvm/settings.xml | sha256sum | cut -d' ' -f1)
for profile in spark kafka; do
  dest=.cache/jars/$profile
  if [[ $(cat "$dest/.done" 2>/dev/null) != "$jwant" ]]; then
    echo "setup: resolving $profile jars with Maven"
    rm -rf "$dest"; mkdir -p "$dest"
    mvn -q -B -s jvm/settings.xml -f jvm/pom.xml -P"$profile" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$ROOT/$dest"
    echo "$jwant" > "$dest/.done"
  fi
done
# Only the jars pyspark does not already ship (its own scala, slf4j, hadoop ... must win).
pyjars=$(.venv/bin/python -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
for jar in .cache/jars/spark/*.jar; do
  base=$(basename "$jar" .jar); artifact=${base%-*}
  if ! compgen -G "$pyjars/${artifact}-[0-9]*" >/dev/null; then cp "$jar" "$pyjars/"; fi
done
echo "setup: ready ($(.venv/bin/python -c 'import pyspark; print("pyspark", pyspark.__version__)'), jars in .cache/jars)"
