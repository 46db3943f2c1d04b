#!/usr/bin/env bash
# Makes sure `valgrind` is installed, for benchmarks/instructions.py (`make bench`): it counts
# what l0 adds per chunk on cachegrind's simulated CPU, which timings on a shared machine
# cannot resolve. Installs Debian's `valgrind` package when missing and apt-get can be used (as
# root, or with password-less sudo). Never fails: without it, instructions.py says so and the
# other benchmarks still run.
set -u

have() { command -v "$1" >/dev/null 2>&1; }

if have valgrind; then
    echo "ensure-valgrind: $(valgrind --version)"
    exit 0
fi
if ! have apt-get; then
    echo "ensure-valgrind: valgrind not found and apt-get is unavailable; instructions.py will be skipped"
    exit 0
fi
if [ "${EUID:-$(id -u)}" -eq 0 ]; then
    as_root=()
elif have sudo && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "ensure-valgrind: valgrind not found; run as root: apt-get update && apt-get install -y valgrind"
    exit 0
fi
echo "ensure-valgrind: installing Debian's valgrind package..."
export DEBIAN_FRONTEND=noninteractive
if "${as_root[@]}" apt-get update -qq \
    && "${as_root[@]}" apt-get install -y -qq --no-install-recommends valgrind >/dev/null; then
    echo "ensure-valgrind: $(valgrind --version)"
else
    echo "ensure-valgrind: apt-get install valgrind FAILED; instructions.py will be skipped"
fi
exit 0
