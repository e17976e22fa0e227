#!/usr/bin/env bash
# Installs the Debian 12 packages that meshplug's build, tests and demo need, and only
# the ones that are missing, so running it again costs a dpkg query and nothing else.
#   tools/install-deps.sh        the build, the tests and the demo
#   tools/install-deps.sh fuzz   also clang-14 and libFuzzer (tools/fuzz.sh)
set -euo pipefail

packages=(
  # build (patch: third_party/asio_rdhup.patch is applied to Boost's headers)
  bazel-bootstrap g++ git patch
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libabsl-dev
  libboost-dev libssl-dev liblua5.4-dev libyaml-cpp-dev libsqlite3-dev libre2-dev libnghttp2-dev
  libgtest-dev libgmock-dev
  # the agent's allocator (docs/benchmarks.md §4.2: 8% fewer instructions per request than glibc's)
  libjemalloc-dev
  # zlib's static archive, for Protobuf linked into the agent (third_party/agent_static.bzl)
  zlib1g-dev
  # tests and the demo
  curl python3 python3-httpbin gunicorn python3-grpcio python3-websockets nghttp2-client
  # interception tests: network namespaces, iptables, setpriv
  iproute2 iptables util-linux
  # the etcd store: members started by the tests (wrk drives traffic while replicas die)
  etcd-server etcd-client wrk
  # observability: Prometheus scrapes the mesh (promtool checks the metrics); the
  # dashboard's test drives a headless Chromium
  prometheus chromium
)
if [ "${1:-}" = fuzz ]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
