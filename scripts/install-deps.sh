#!/usr/bin/env bash
# Installs what rvpp's tests and benchmark peers need. Idempotent: safe to run again.
set -euo pipefail
pkgs=(
  iproute2 iputils-ping tcpdump tshark iperf3 python3-pip pkg-config ethtool
  dpdk dpdk-dev libdpdk-dev librte-net-memif23 librte-net-null23 librte-net-ring23 librte-net-af-xdp23
  clang llvm libclang-dev m4 libelf-dev zlib1g-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import vpp_papi' 2>/dev/null || pip install -q vpp-papi
python3 -c 'import scapy' 2>/dev/null || pip install -q scapy
echo "install-deps: ok"
