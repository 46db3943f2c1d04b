#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are installed, for tests/integration/test_dashboards.py
# (every dashboard and alert query is run against a real Prometheus) and the promtool checks.
#
# Installs Debian's `prometheus` package when they are missing and apt-get can be used (as
# root, or with password-less sudo). Never fails: where apt is unavailable it says so, and the
# tests skip with the same hint; where apt is available but the install failed, the tests fail.
# The package's service is not needed (the tests start their own Prometheus on a free port).
set -u

have() { command -v "$1" >/dev/null 2>&1; }

if have prometheus && have promtool; then
    echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi

if ! have apt-get; then
    echo "ensure-prometheus: prometheus/promtool not found and apt-get is unavailable here;" \
         "the Prometheus dashboard tests will be skipped (install Prometheus to run them)."
    exit 0
fi

if [ "${EUID:-$(id -u)}" -eq 0 ]; then
    as_root=()
elif have sudo && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "ensure-prometheus: prometheus/promtool not found; run as root:" \
         "apt-get update && apt-get install -y prometheus"
    exit 0
fi

echo "ensure-prometheus: installing Debian's prometheus package (prometheus, promtool)..."
export DEBIAN_FRONTEND=noninteractive
if "${as_root[@]}" apt-get update -qq \
    && "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)"
else
    echo "ensure-prometheus: apt-get install prometheus FAILED; the dashboard tests will fail" \
         "until prometheus and promtool are installed."
fi
exit 0
