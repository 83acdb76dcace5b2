#!/bin/sh
# deps.sh — installs the Debian packages unigen needs, only those missing (root or sudo).
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --check  exit 1 if a build dependency is missing, install nothing
#   scripts/deps.sh --all    also Open MPI, PyTorch/numpy (cross-checks, benchmarks)
#   ... --mpi                (after any of the above) Open MPI for `make MPI=1`, checked too
set -eu
build_pkgs="gcc make pkg-config libopenblas-openmp-dev liblapacke-dev libcjson-dev zlib1g-dev libpng-dev"
test_pkgs="python3-numpy dataset-fashion-mnist"
mpi_pkgs="libopenmpi-dev openmpi-bin"
extra_pkgs="$mpi_pkgs python3-torch"

mode=${1:-}
[ "$mode" = "--mpi" ] && mode=""
mpi=""
for a in "$@"; do [ "$a" = "--mpi" ] && mpi=1; done
want="$build_pkgs $test_pkgs"
[ "$mode" = "--all" ] && want="$want $extra_pkgs"
[ "$mode" = "--check" ] && want="$build_pkgs"
[ -n "$mpi" ] && want="$want $mpi_pkgs"

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$mode" = "--check" ]; then
    echo "missing Debian packages:$missing" >&2
    exit 1
fi

echo "scripts/deps.sh: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "scripts/deps.sh: need root or sudo to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
