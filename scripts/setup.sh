#!/usr/bin/env bash
# Installs the Debian packages shardlm builds and tests with. Idempotent: packages already present
# are not fetched again. Needs root (or sudo) on Debian 12.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libopenmpi-dev openmpi-bin libucx-dev ucx-utils
  libdnnl-dev ocl-icd-opencl-dev libboost-dev libboost-program-options-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libprotobuf-dev protobuf-compiler libsqlite3-dev
  libcli11-dev libspdlog-dev libfmt-dev libssl-dev openssl
  python3-numpy prometheus
)
# Node.js and npm run the reference implementations the tests compare against (tokenizer, Jinja,
# the OpenAI client). A machine may already have a Node.js that bundles npm; keep it then.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
