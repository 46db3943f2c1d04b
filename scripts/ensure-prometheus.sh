#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are installed, for tests/integration/test_dashboards.py
# (every dashboard and alert query is run against a real Prometheus) and the promtool checks.
#
# Installs Debian's `prometheus` package when they are missing and apt-get can be used (as
# root, or with password-less sudo). Never fails: where apt is unavailable it says so, and the
# tests skip with the same hint; where apt is available but the install failed, the tests fail.
# The package's service is not needed (the tests start their own Prometheus on a free port).
set -u
. "$(dirname "$0")/_apt.sh"

if have prometheus && have promtool; then
    echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi

apt_install ensure-prometheus prometheus
case $? in
    0) echo "ensure-prometheus: $(prometheus --version 2>&1 | head -n 1)" ;;
    1) echo "ensure-prometheus: apt-get install prometheus FAILED; the dashboard tests will fail" \
            "until prometheus and promtool are installed." ;;
    *) echo "ensure-prometheus: prometheus/promtool not found; the Prometheus dashboard tests" \
            "will be skipped (install Prometheus to run them)." ;;
esac
exit 0
