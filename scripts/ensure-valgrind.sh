#!/usr/bin/env bash
# Makes sure `valgrind` is installed, for benchmarks/instructions.py (`make bench`): it counts
# what l0 adds per chunk on cachegrind's simulated CPU, which timings on a shared machine
# cannot resolve. Installs Debian's `valgrind` package when missing and apt-get can be used.
# Never fails: without it, instructions.py says so and the other benchmarks still run.
set -u
. "$(dirname "$0")/_apt.sh"

if ! have valgrind; then
    apt_install ensure-valgrind valgrind
fi
if have valgrind; then
    echo "ensure-valgrind: $(valgrind --version)"
else
    echo "ensure-valgrind: no valgrind; benchmarks/instructions.py will be skipped"
fi
exit 0
