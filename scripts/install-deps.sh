#!/usr/bin/env bash
# Installs every Debian 12 package the build, the lab, the tests and the benchmark need.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail
packages=(
  # build
  clang llvm libclang-rt-14-dev libbpf-dev bpftool libelf-dev zlib1g-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto
  libabsl-dev catch2 cmake ninja-build pkg-config g++ prometheus-cpp-dev
  libsqlite3-dev libssl-dev
  # lab, e2e tests, benchmark peers
  iproute2 iputils-ping iputils-tracepath curl socat python3 python3-scapy nftables conntrack netsniff-ng tcpdump ethtool
  python3-grpcio python3-protobuf openssl
  # NAT logging peers: IPFIX decoding, RADIUS accounting client, the attribution index
  tshark freeradius-utils sqlite3
  # deployment: the .deb (dpkg-shlibdeps), the unit check, the Ansible role and its linters
  dpkg-dev fakeroot systemd logrotate ansible ansible-lint yamllint python3-apt
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
