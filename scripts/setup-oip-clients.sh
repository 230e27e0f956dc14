#!/usr/bin/env bash
# Set up .venv-oip: stock Open Inference Protocol clients (KServe's and Triton's, from PyPI) for the
# protocol tests, pinned in scripts/oip-clients/ (their own venv: kserve pins psutil<6).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/tool-venv.sh
tool_venv setup-oip-clients .venv-oip scripts/oip-clients
echo "setup-oip-clients: ready (.venv-oip: kserve, tritonclient[http])"
