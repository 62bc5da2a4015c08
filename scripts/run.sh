#!/usr/bin/env bash
# Build echod (release) and start it in the foreground with the given
# options (default: port 9999). Installs cmake, gcc and libseccomp-dev on
# Debian when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
deps_install cmake make gcc libc6-dev libseccomp-dev
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target echod echo-client echo-stress
[ $# -gt 0 ] || set -- -p 9999
exec build/src/echod "$@"
