#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmarks need, from
# Debian's packages. Idempotent and non-interactive: packages already present
# are left alone, and it says what it installs.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libconcurrentqueue-dev libmimalloc-dev catch2 libbenchmark-dev
  libcaf-dev libboost-dev libboost-filesystem-dev
  valgrind
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
