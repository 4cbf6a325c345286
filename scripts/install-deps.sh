#!/usr/bin/env bash
# Installs what rvpp's tests and benchmark peers need. Idempotent: safe to run again.
set -euo pipefail
pkgs=(
  iproute2 iputils-ping tcpdump tshark iperf3 nftables python3-pip pkg-config ethtool
  wireguard-go wireguard-tools
  dpdk dpdk-dev libdpdk-dev librte-net-memif23 librte-net-null23 librte-net-ring23 librte-net-af-xdp23
  clang llvm libclang-dev m4 libelf-dev zlib1g-dev
  # IKEv2 interop peer (ikev2/tests/strongswan.rs): charon, swanctl, kernel-libipsec.
  strongswan-charon strongswan-swanctl libcharon-extra-plugins
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
# Python modules for the python3 the tests run (which may be a pyenv one, not Debian's).
# `python3 -m pip`, not a bare `pip` that may belong to another interpreter. A Debian python3
# is marked EXTERNALLY-MANAGED (PEP 668) and refuses pip: there, take the Debian package when
# there is one, else pip with --break-system-packages. Whatever the route, the import must work.
py_module() { # module, pip package, Debian package or ""
  local mod=$1 pip_pkg=$2 deb=$3 out
  python3 -c "import $mod" 2>/dev/null && return 0
  echo "install-deps: python3 lacks $mod; installing $pip_pkg"
  if ! out=$(python3 -m pip install -q "$pip_pkg" 2>&1); then
    if ! grep -q externally-managed-environment <<<"$out"; then
      echo "$out" >&2
      echo "install-deps: pip install $pip_pkg failed" >&2
      exit 1
    fi
    if [ -n "$deb" ] && [ "$(command -v python3)" = /usr/bin/python3 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
    else
      python3 -m pip install -q --break-system-packages "$pip_pkg"
    fi
  fi
  if ! python3 -c "import $mod"; then
    echo "install-deps: $pip_pkg installed but python3 ($(command -v python3)) cannot import $mod" >&2
    exit 1
  fi
}
py_module vpp_papi vpp-papi ""
py_module scapy scapy python3-scapy
py_module prometheus_client prometheus-client python3-prometheus-client
echo "install-deps: ok"
