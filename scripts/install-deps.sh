#!/usr/bin/env bash
# Installs everything kiln needs to build and test on Debian 12 (run as root, or with sudo).
# Only Debian packages: no other downloads.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build ccache pkg-config git curl python3 python3-numpy python3-onnx \
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata \
  libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev libfmt-dev \
  flatbuffers-compiler libflatbuffers-dev libxxhash-dev graphviz \
  libdnnl-dev libbenchmark-dev libstb-dev \
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev libgrpc++-dev protobuf-compiler-grpc python3-requests python3-grpcio time pybind11-dev python3-dev clang-14 libclang-rt-14-dev libomp-14-dev clang-format-14 clang-tidy-14 \
  >/dev/null
echo "install-deps: done"
