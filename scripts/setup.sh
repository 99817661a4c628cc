#!/usr/bin/env bash
# Installs the Debian packages attn needs that are missing, and nothing else.
#   scripts/setup.sh build   compiler, CMake and the libraries the tool links
#   scripts/setup.sh test    the above, plus cmocka, PyTorch, clang's fuzzer and Chromium
#                            (the interactive attention page's test)
set -euo pipefail

build_packages=(gcc make cmake pkg-config libdnnl-dev libcjson-dev libcairo2-dev)
test_packages=(libcmocka-dev python3 python3-numpy python3-torch clang libclang-rt-dev chromium)

case "${1:-build}" in
  build) wanted=("${build_packages[@]}") ;;
  test) wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: scripts/setup.sh [build|test]" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
