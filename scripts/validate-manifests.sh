#!/usr/bin/env bash
# Validate every manifest in deploy/ offline against the Kubernetes schemas
# (kubernetes-validate from PyPI, installed here if missing). Custom resources
# (NADs) have no schema there; meta-plugin/tests/manifests.rs parses them with
# vfplex's own parsers.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubernetes-validate >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 >/dev/null 2>&1 ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages kubernetes-validate==1.37.0
fi
validator=$(command -v kubernetes-validate || echo "python3 -m kubernetes_validate")
$validator --strict deploy/*.yaml deploy/examples/*.yaml
echo "manifests: valid"
