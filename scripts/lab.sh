#!/usr/bin/env bash
# The rvpp netns lab: a Calico-VPP node and a plain-Linux node, in namespaces, end to end.
#
#   sudo bash scripts/lab.sh [--uplink af_xdp|af_packet] [--no-robustness] [--keep]
#   sudo bash scripts/lab.sh --cluster [--keep]   (two rvpp nodes and a Linux node: see below)
#   (environment: RVPP=path/to/rvpp, UDP_RATE=200M for the iperf3 UDP checks,
#    MIN_TCP_MBPS: iperf3 TCP below it fails; 0, and 50 with --cluster)
#
#   pod1 (tun eth0) ─┐                                 ┌─ rpod (veth eth0)
#                    ├─ rvpp in "node" ── eth1 veth ── "remote" (Linux routing)
#   pod2 (tun eth0) ─┘    (af_xdp or af_packet uplink)
#
# rvpp runs inside the node namespace, configured by startup.conf + an exec file of CLI
# lines; it creates each pod's tun interface inside the pod's namespace (calico's way). The
# checks: ping v4/v6 pod<->pod and pod<->remote, iperf3 TCP/UDP, ICMP frag-needed and
# packet-too-big, ARP/ND on the uplink, services (ClusterIP, NodePort, hostport, SNAT of a pod
# reaching outside seen from the receiving end), then robustness (uplink flap, a tap deleted from
# outside, a pod namespace deleted under traffic, SIGKILL and restart) and a clean SIGTERM
# exit. Addresses come from 198.18.0.0/15 and fd00::/8 only; nothing touches the machine's
# own interfaces. Everything is removed on exit, failure included.
#
# --cluster (scripts/lab-cluster.sh, on this file's helpers): rvpp nodes A and B and a Linux
# node C, each with its pods, joined by a bridge in a fabric namespace (af_packet uplinks).
# A <-> B over IPIP and over VXLAN in calico-vpp's L3 mode (pods of different blocks routed
# via each), A and B <-> C over VXLAN in the Linux-compatible L2 mode, C's vxlan.calico and
# vxlan-v6.calico set up as felix does; ping and iperf3 TCP between every pair of nodes' pods,
# ClusterIPs whose backends are on other nodes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
UPLINK=af_xdp
ROBUST=1
UDP_RATE=${UDP_RATE:-200M}
KEEP=0
CLUSTER=0
while [ $# -gt 0 ]; do
  case "$1" in
    --uplink) UPLINK=$2; shift 2 ;;
    --no-robustness) ROBUST=0; shift ;;
    --keep) KEEP=1; shift ;;
    --cluster) CLUSTER=1; UPLINK=af_packet; shift ;;
    -h|--help) sed -n 2,27p "$0"; exit 0 ;;
    *) echo "lab: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$UPLINK" in af_xdp|af_packet) ;; *) echo "lab: --uplink af_xdp|af_packet" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "lab: run as root (sudo bash scripts/lab.sh)" >&2; exit 2; }
# What the lab needs (iproute2, iperf3, ping, ethtool, ...), installed once; idempotent.
[ -n "${RVPP_LAB_NO_INSTALL:-}" ] || bash "$ROOT/scripts/install-deps.sh" >/dev/null
for t in ip ping iperf3 ethtool python3; do
  command -v "$t" >/dev/null || { echo "lab: $t missing; run scripts/install-deps.sh" >&2; exit 2; }
done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RVPP=${RVPP:-$TARGET/release/rvpp}
RVPPCTL=${RVPPCTL:-$(dirname "$RVPP")/rvppctl}
if [ ! -x "$RVPP" ] || [ ! -x "$RVPPCTL" ]; then
  echo "lab: building rvpp (release)"
  (cd "$ROOT" && cargo build --release -q -p rvpp-control)
fi

ID=$$
if [ "$CLUSTER" = 1 ]; then
  FABRIC=rvpp-lab-$ID-fabric NODE_A=rvpp-lab-$ID-a NODE_B=rvpp-lab-$ID-b NODE_C=rvpp-lab-$ID-c
  PODA1=rvpp-lab-$ID-a1 PODA2=rvpp-lab-$ID-a2 PODB1=rvpp-lab-$ID-b1 PODB2=rvpp-lab-$ID-b2
  PODC1=rvpp-lab-$ID-c1
  NSES=($FABRIC $NODE_A $NODE_B $NODE_C $PODA1 $PODA2 $PODB1 $PODB2 $PODC1)
else
  NODE=rvpp-lab-$ID-node POD1=rvpp-lab-$ID-pod1 POD2=rvpp-lab-$ID-pod2 POD3=rvpp-lab-$ID-pod3
  REMOTE=rvpp-lab-$ID-remote RPOD=rvpp-lab-$ID-rpod
  NSES=($NODE $POD1 $POD2 $POD3 $REMOTE $RPOD)
fi
DIR=$(mktemp -d /tmp/rvpp-lab.XXXXXX)
LOG=$DIR/rvpp.log
# RVPP_PID: the single node's rvpp (restarted by the robustness checks); RVPP_PIDS: the
# cluster's. cleanup stops both.
RVPP_PID=
RVPP_PIDS=()
PASS=0 FAIL=0

stop_rvpp() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  if [ "$KEEP" = 1 ] && { [ -n "$RVPP_PID" ] || [ ${#RVPP_PIDS[@]} -gt 0 ]; }; then
    echo "lab: --keep: rvpp pid(s) $RVPP_PID ${RVPP_PIDS[*]}, CLI: $RVPPCTL -s $DIR/[node/]cli.sock"
    echo "lab: press enter to clean up"
    read -r _ || true
  fi
  for pid in $RVPP_PID "${RVPP_PIDS[@]}"; do stop_rvpp "$pid"; done
  for ns in "${NSES[@]}"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  if [ "$FAIL" -gt 0 ] || [ "$rc" != 0 ]; then
    for l in "$DIR"/*.log; do
      [ -e "$l" ] || continue
      echo "---- $(basename "$l") (last 40 lines) ----"; tail -40 "$l" || true
    done
  fi
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok()   { PASS=$((PASS + 1)); echo "  ok    $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "  FAIL  $*"; }
check() { local what=$1; shift; if "$@" >"$DIR/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/        /' "$DIR/out" | tail -5; fi; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ctl() { "$RVPPCTL" -s "$DIR/cli.sock" "$@"; }
wait_for() { local n=$1; shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
ping4() { in_ns "$1" ping -q -c 3 -i 0.2 -W 2 "$2"; }
ping6() { in_ns "$1" ping -6 -q -c 3 -i 0.2 -W 2 "$2"; }

# A node's startup.conf in <dir>: CLI socket, the exec file <dir>/setup.cli, stats socket.
write_startup() {
  cat >"$1/startup.conf" <<EOF
unix { nodaemon cli-listen $1/cli.sock exec $1/setup.cli pidfile $1/rvpp.pid } 
statseg { socket-name $1/stats.sock }
buffers { buffers-per-numa 32768 }
EOF
}

# launch_rvpp <node ns> <dir> <log> <pod ns>...: rvpp in the node's namespace on <dir>'s
# startup.conf, up once its CLI listens and each pod has its eth0. Sets LAUNCHED_PID.
launch_rvpp() {
  local ns=$1 dir=$2 log=$3; shift 3
  rm -f "$dir/cli.sock"
  RVPP_LOG=info ip netns exec "$ns" "$RVPP" -c "$dir/startup.conf" >>"$log" 2>&1 &
  LAUNCHED_PID=$!
  wait_for 100 test -S "$dir/cli.sock" || { echo "lab: rvpp did not start"; cat "$log"; exit 1; }
  local pod
  for pod in "$@"; do
    wait_for 50 ip -n "$pod" link show eth0 || { echo "lab: $pod's interface missing"; exit 1; }
  done
}

# The pod side, as calico's CNI does it: /32 and /128 addresses, default routes via the tun.
setup_pod() {
  local ns=$1 v4=$2 v6=$3
  ip -n "$ns" addr add "$v4/32" dev eth0
  ip -n "$ns" addr add "$v6/128" dev eth0 nodad
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default dev eth0
  ip -n "$ns" -6 route add default dev eth0
}

# iperf3 runs: prints the rate; fails on an iperf error or (UDP) more than 5% loss.
iperf() {
  local from=$1 to_ns=$2 addr=$3; shift 3
  in_ns "$to_ns" iperf3 -s -1 -B "$addr" >/dev/null 2>&1 &
  local srv=$!
  wait_for 50 sh -c "ip netns exec $to_ns ss -ltn | grep -q ':5201'"
  local rc=0
  in_ns "$from" timeout 20 iperf3 -c "$addr" -t "${IPERF_SECONDS:-2}" -J "$@" >"$DIR/iperf.json" || rc=$?
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  [ $rc = 0 ] || return 1
  python3 - "$DIR/iperf.json" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1]))
e = j["end"]
if j["start"]["test_start"]["protocol"] == "UDP":
    s = e["sum"]
    print(f'{s["bits_per_second"] / 1e6:.0f} Mbit/s, {s["lost_percent"]:.2f}% lost')
    sys.exit(0 if s["lost_percent"] < 5 else 1)
bps = e["sum_received"]["bits_per_second"]
rtx = e["sum_sent"].get("retransmits")
print((f"{bps / 1e9:.2f} Gbit/s" if bps >= 1e8 else f"{bps / 1e6:.1f} Mbit/s")
      + (f", {rtx} retransmits" if rtx else ""))
# A path that loses most segments still "works" at a few Mbit/s: MIN_TCP_MBPS fails it.
floor = float(os.environ.get("MIN_TCP_MBPS", "0"))
if bps < floor * 1e6:
    sys.exit(f"below the {floor:.0f} Mbit/s floor (MIN_TCP_MBPS)")
PY
}
check_iperf() { local what=$1; shift; if iperf "$@" >"$DIR/out" 2>&1; then ok "$what: $(tail -1 "$DIR/out")"; else bad "$what"; tail -3 "$DIR/out" | sed 's/^/        /'; fi; }

# TCP through a translation: the server binds the backend's address, the client dials the VIP.
via_service() {
  local from=$1 to_ns=$2 backend=$3 vip=$4 port=$5
  in_ns "$to_ns" iperf3 -s -1 -B "$backend" >/dev/null 2>&1 &
  local srv=$!
  wait_for 50 sh -c "ip netns exec $to_ns ss -ltn | grep -q ':5201'"
  local rc=0
  in_ns "$from" timeout 20 iperf3 -c "$vip" -p "$port" -t 1 -J >"$DIR/iperf.json" || rc=$?
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  [ $rc = 0 ] && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
if "error" in j:
    sys.exit("iperf3: " + j["error"])
print("%.2f Gbit/s" % (j["end"]["sum_received"]["bits_per_second"] / 1e9))' "$DIR/iperf.json"
}
# One retry, said in the result: a one-second iperf3 through a fresh cnat session now and then
# reports an error of its own (its control connection); a broken service fails both tries.
check_service() {
  local what=$1; shift
  if via_service "$@" >"$DIR/out" 2>&1; then ok "$what: $(tail -1 "$DIR/out")"; return; fi
  local first; first=$(tail -1 "$DIR/out")
  if via_service "$@" >"$DIR/out" 2>&1; then ok "$what: $(tail -1 "$DIR/out") (second try; the first: $first)"
  else bad "$what"; tail -3 "$DIR/out" | sed 's/^/        /'; fi
}

if [ "$CLUSTER" = 1 ]; then
  # shellcheck source=scripts/lab-cluster.sh
  . "$ROOT/scripts/lab-cluster.sh"
  echo "lab: $PASS passed, $FAIL failed"
  [ "$FAIL" = 0 ]
  exit
fi

echo "lab: namespaces ${NSES[*]}, uplink $UPLINK, work dir $DIR"
for ns in "${NSES[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
for ns in $POD1 $POD2 $POD3 $REMOTE $RPOD; do
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done

# Uplink: node eth1 <-> remote eth1. The remote node routes the rvpp node's pods with Linux.
ip -n $NODE link add eth1 type veth peer name eth1 netns $REMOTE
ip -n $NODE link set eth1 up
ip -n $REMOTE link set eth1 up
# AF_XDP takes plain frames with full checksums, so the remote end fills its checksums and
# segments there. The af_packet uplink has the vnet header and takes the veth's offloads as
# they come (super-frames, checksums left to do), as from a NIC with TSO.
if [ "$UPLINK" = af_xdp ]; then
  in_ns $REMOTE ethtool -K eth1 tx off tso off gso off gro off >/dev/null 2>&1 || true
fi
ip -n $REMOTE addr add 198.19.0.2/24 dev eth1
ip -n $REMOTE addr add fd00:19::2/64 dev eth1 nodad
in_ns $REMOTE sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n $REMOTE route add 198.18.0.0/18 via 198.19.0.1
ip -n $REMOTE -6 route add fd00:18::/64 via fd00:19::1
# The remote node's own pod.
ip -n $REMOTE link add eth2 type veth peer name eth0 netns $RPOD
ip -n $REMOTE link set eth2 up
ip -n $RPOD link set eth0 up
ip -n $REMOTE addr add 198.18.64.1/24 dev eth2
ip -n $REMOTE addr add fd00:64::1/64 dev eth2 nodad
ip -n $RPOD addr add 198.18.64.2/24 dev eth0
ip -n $RPOD addr add fd00:64::2/64 dev eth0 nodad
ip -n $RPOD route add default via 198.18.64.1
ip -n $RPOD -6 route add default via fd00:64::1

if [ "$UPLINK" = af_xdp ]; then
  UPCREATE="create interface af_xdp host-if eth1 num-rx-queues 1"; UP=eth1/0
else
  UPCREATE="create host-interface name eth1 gso"; UP=host-eth1
fi
write_startup "$DIR"
cat >"$DIR/setup.cli" <<EOF
create tap id 0 host-if-name eth0 host-ns $POD1 tun host-mtu-size 1400 gso
create tap id 1 host-if-name eth0 host-ns $POD2 tun host-mtu-size 1400 gso
$UPCREATE
set interface state tun0 up
set interface state tun1 up
set interface state $UP up
set interface ip address $UP 198.19.0.1/24
set interface ip address $UP fd00:19::1/64
ip route add 198.18.1.2/32 via tun0
ip route add 198.18.2.2/32 via tun1
ip route add fd00:18::12/128 via tun0
ip route add fd00:18::22/128 via tun1
ip route add 198.18.64.0/24 via 198.19.0.2 $UP
ip route add fd00:64::/64 via fd00:19::2 $UP
EOF

start_rvpp() { launch_rvpp $NODE "$DIR" "$LOG" $POD1 $POD2; RVPP_PID=$LAUNCHED_PID; }

start_rvpp
setup_pod $POD1 198.18.1.2 fd00:18::12
setup_pod $POD2 198.18.2.2 fd00:18::22
echo "lab: rvpp pid $RVPP_PID up"

echo "== connectivity"
check "ping pod1 -> pod2 (IPv4)" ping4 $POD1 198.18.2.2
check "ping pod1 -> pod2 (IPv6)" ping6 $POD1 fd00:18::22
check "ping pod1 -> remote pod (IPv4)" ping4 $POD1 198.18.64.2
check "ping pod1 -> remote pod (IPv6)" ping6 $POD1 fd00:64::2
check "ping remote pod -> pod2 (IPv4)" ping4 $RPOD 198.18.2.2
check "ping remote pod -> pod2 (IPv6)" ping6 $RPOD fd00:18::22
check "ping remote node -> rvpp uplink address" ping4 $REMOTE 198.19.0.1

echo "== ARP / ND on the uplink"
upmac=$(ctl show hardware | awk -v u="$UP" '$1 == u {f=1} f && /Ethernet address/ {print $3; exit}')
check "rvpp learned the remote node by ARP" sh -c "$RVPPCTL -s $DIR/cli.sock show ip neighbors | grep -q '198.19.0.2 .*D'"
check "rvpp learned the remote node by ND" sh -c "$RVPPCTL -s $DIR/cli.sock show ip neighbors | grep -q 'fd00:19::2 .*D'"
check "remote node resolved rvpp by ARP ($upmac)" sh -c "ip -n $REMOTE neigh show 198.19.0.1 | grep -qi '$upmac'"
check "remote node resolved rvpp by ND" sh -c "ip -n $REMOTE -6 neigh show fd00:19::1 | grep -qi '$upmac'"

echo "== iperf3"
check_iperf "TCP pod1 -> pod2" $POD1 $POD2 198.18.2.2
check_iperf "TCP pod1 -> pod2, 4 streams" $POD1 $POD2 198.18.2.2 -P 4
check_iperf "TCP pod1 -> pod2 (IPv6)" $POD1 $POD2 fd00:18::22
check_iperf "UDP pod1 -> pod2" $POD1 $POD2 198.18.2.2 -u -b "$UDP_RATE" -l 1200
check_iperf "TCP pod1 -> remote pod" $POD1 $RPOD 198.18.64.2
check_iperf "TCP remote pod -> pod2" $RPOD $POD2 198.18.2.2
check_iperf "UDP pod1 -> remote pod" $POD1 $RPOD 198.18.64.2 -u -b "$UDP_RATE" -l 1200

echo "== services (cnat: ClusterIP, NodePort and hostport from the remote node, SNAT out)"
for i in tun0 tun1 $UP; do ctl set cnat interface $i >/dev/null; done
ctl cnat translation add proto tcp vip 198.18.100.1 5201 to 198.18.2.2 5201 >/dev/null
ctl cnat translation add proto tcp vip fd00:18::100 5201 to fd00:18::22 5201 >/dev/null
ctl cnat translation add proto tcp real 198.19.0.1 30080 to 198.18.2.2 5201 >/dev/null
check_service "TCP pod1 -> ClusterIP 198.18.100.1:5201 -> pod2" $POD1 $POD2 198.18.2.2 198.18.100.1 5201
# Right after the flow: closed TCP sessions expire 5 s after their FIN.
check "show cnat session lists the ClusterIP flows" sh -c "$RVPPCTL -s $DIR/cli.sock show cnat session | grep -q '198.18.100.1;5201'"
check_service "TCP pod1 -> ClusterIP [fd00:18::100]:5201 -> pod2" $POD1 $POD2 fd00:18::22 fd00:18::100 5201
check_service "TCP remote pod -> NodePort 198.19.0.1:30080 -> pod2" $RPOD $POD2 198.18.2.2 198.19.0.1 30080
check "clear cnat session empties the table" sh -c "$RVPPCTL -s $DIR/cli.sock clear cnat session >/dev/null && $RVPPCTL -s $DIR/cli.sock show cnat session | grep -q 'sessions: 0 '"

# One TCP exchange with a one-shot python server: it answers "pong" and writes the address
# it saw the client come from, so a check can tell DNAT (client kept) from SNAT.
tcp_server() {
  in_ns "$1" python3 -c '
import socket, sys
a, p, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((a, p)); s.listen(1); s.settimeout(15)
c, peer = s.accept(); c.settimeout(5)
c.recv(100); c.sendall(b"pong")
open(out, "w").write(peer[0])
' "$2" "$3" "$4"
}
tcp_client() {
  in_ns "$1" python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"ping"); print(c.recv(100).decode())
' "$2" "$3"
}
# tcp_via <server ns> <bind addr> <bind port> <client ns> <dial addr> <dial port> <peer the server must see>
tcp_via() {
  local sns=$1 bind=$2 bport=$3 cns=$4 dst=$5 dport=$6 want=$7
  rm -f "$DIR/peer"
  tcp_server "$sns" "$bind" "$bport" "$DIR/peer" &
  local srv=$!
  wait_for 50 sh -c "ip netns exec $sns ss -ltn | grep -q ':$bport '"
  local reply rc=0
  reply=$(tcp_client "$cns" "$dst" "$dport") || rc=$?
  wait "$srv" 2>/dev/null || rc=1
  local peer; peer=$(cat "$DIR/peer" 2>/dev/null || true)
  echo "reply '$reply', server saw $peer (want $want)"
  [ $rc = 0 ] && [ "$reply" = pong ] && [ "$peer" = "$want" ]
}
check_tcp() { local what=$1; shift; if tcp_via "$@" >"$DIR/out" 2>&1; then ok "$what: $(tail -1 "$DIR/out")"; else bad "$what"; tail -3 "$DIR/out" | sed 's/^/        /'; fi; }

# A hostport as calico programs it: node IP:hostPort -> pod IP:containerPort, one path,
# is_real_ip (the address is the node's own). The client's address reaches the pod.
ctl cnat translation add proto tcp real 198.19.0.1 8443 to 198.18.1.2 8080 >/dev/null
ctl cnat translation add proto tcp real fd00:19::1 8443 to fd00:18::12 8080 >/dev/null
check_tcp "TCP remote node -> hostport 198.19.0.1:8443 -> pod1:8080" \
  $POD1 198.18.1.2 8080 $REMOTE 198.19.0.1 8443 198.19.0.2
check_tcp "TCP remote node -> hostport [fd00:19::1]:8443 -> pod1:8080" \
  $POD1 fd00:18::12 8080 $REMOTE fd00:19::1 8443 fd00:19::2

# SNAT as calico sets it for a natOutgoing pool: the node's address, the K8S policy, the pod
# interfaces in the POD and INCLUDE tables, the cluster's pod and service prefixes excluded.
# A pod reaching outside the cluster (the plain-Linux node itself) leaves from the node address.
ctl set cnat snat-policy addr 198.19.0.1 fd00:19::1
ctl set cnat snat-policy k8s
for i in tun0 tun1; do
  for t in k8s include-v4 include-v6; do ctl set cnat snat-policy if table $t $i; done
done
for p in 198.18.0.0/17 fd00:18::/64 fd00:64::/64; do ctl set cnat snat-policy prefix $p; done
check "show cnat snat: the node address, the K8S policy, the excluded prefixes" sh -c \
  "$RVPPCTL -s $DIR/cli.sock show cnat snat | tee /dev/stderr | grep -q 'snat ip4: 198.19.0.1 ip6: fd00:19::1' \
   && $RVPPCTL -s $DIR/cli.sock show cnat snat | grep -q 'policy: K8s' \
   && $RVPPCTL -s $DIR/cli.sock show cnat snat | grep -q 'exclude 198.18.0.0/17'"
check_tcp "SNAT: TCP pod1 -> remote node 198.19.0.2 arrives from the node address" \
  $REMOTE 198.19.0.2 9090 $POD1 198.19.0.2 9090 198.19.0.1
check "show cnat session lists the SNAT flow" sh -c \
  "$RVPPCTL -s $DIR/cli.sock show cnat session | grep -q '198.18.1.2;[0-9]* -> 198.19.0.2;9090 .*output forward.*=> 198.19.0.1;'"
check_tcp "SNAT: TCP pod1 -> remote node [fd00:19::2] arrives from the node address" \
  $REMOTE fd00:19::2 9090 $POD1 fd00:19::2 9090 fd00:19::1
check_tcp "no SNAT to an excluded prefix: pod1 -> remote pod keeps the pod address" \
  $RPOD 198.18.64.2 9091 $POD1 198.18.64.2 9091 198.18.1.2
check_tcp "no SNAT towards a pod: remote pod -> pod2 keeps the remote address" \
  $POD2 198.18.2.2 9092 $RPOD 198.18.2.2 9092 198.18.64.2

echo "== too big"
in_ns $RPOD ping -q -M do -s 1450 -c 2 -W 1 198.18.1.2 >/dev/null 2>&1 || true
check "ICMP fragmentation-needed from rvpp (remote pod learned mtu 1400)" \
  sh -c "ip -n $RPOD route get 198.18.1.2 | grep -q 'mtu 1400'"
in_ns $RPOD ping -6 -q -M do -s 1450 -c 2 -W 1 fd00:18::12 >/dev/null 2>&1 || true
check "ICMPv6 packet-too-big from rvpp (remote pod learned mtu 1400)" \
  sh -c "ip -n $RPOD -6 route get fd00:18::12 | grep -q 'mtu 1400'"
check "a 1400-byte packet still fits" in_ns $RPOD ping -q -M do -s 1372 -c 1 -W 2 198.18.1.2

# The log line may land a moment after the event (the device monitor polls): wait up to 10 s
# for it rather than sleeping a guessed time first.
logged() { for _ in $(seq 100); do grep -q "$1" "$LOG" && return 0; sleep 0.1; done; return 1; }

if [ "$ROBUST" = 1 ]; then
  echo "== robustness"
  # Uplink flap.
  ip -n $NODE link set eth1 down
  check "uplink down is logged" logged "eth1 link down"
  ip -n $NODE link set eth1 up
  check "uplink up is logged" logged "eth1 link up"
  check "pod1 -> remote pod after the flap" wait_for 30 ping4 $POD1 198.18.64.2

  # A tap removed from outside.
  ctl create tap id 2 host-if-name eth0 host-ns $POD3 tun host-mtu-size 1400 gso >/dev/null
  wait_for 50 ip -n $POD3 link show eth0
  ip -n $POD3 link del eth0
  check "the removed tap is logged and dropped" logged "tun2: host interface lost"
  check "pod1 -> pod2 still forwards" ping4 $POD1 198.18.2.2

  # A pod namespace deleted under traffic (pod2 receiving a ping flood from the remote pod).
  in_ns $RPOD ping -q -i 0.01 -c 500 198.18.2.2 >/dev/null 2>&1 &
  flood=$!
  # Under traffic: wait until pod2 has received part of the flood.
  wait_for 50 sh -c "[ \$(ip -n $POD2 -s link show eth0 | awk '/RX:/ {getline; print \$2}') -gt 20 ]" || true
  for p in $(ip netns pids $POD2); do kill -KILL "$p" 2>/dev/null || true; done
  ip netns del $POD2
  wait $flood 2>/dev/null || true
  check "the deleted pod namespace is logged" logged "tun1: host interface lost"
  check "pod1 -> remote pod still forwards" ping4 $POD1 198.18.64.2
  check "rvpp still answers its CLI" ctl show version
  ip netns add $POD2; ip -n $POD2 link set lo up
  in_ns $POD2 sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0

  # SIGKILL, then start again: nothing stale may get in the way.
  kill -KILL "$RVPP_PID"; wait "$RVPP_PID" 2>/dev/null || true
  check "no tun left in pod1 after SIGKILL" wait_for 50 sh -c "! ip -n $POD1 link show eth0"
  check "no XDP program left on the uplink after SIGKILL" sh -c "! ip -n $NODE link show eth1 | grep -q xdp"
  start_rvpp
  setup_pod $POD1 198.18.1.2 fd00:18::12
  setup_pod $POD2 198.18.2.2 fd00:18::22
  check "restarted: ping pod1 -> pod2" wait_for 30 ping4 $POD1 198.18.2.2
  check "restarted: ping pod1 -> remote pod (IPv6)" wait_for 30 ping6 $POD1 fd00:64::2
fi

echo "== shutdown"
kill -TERM "$RVPP_PID"
rc=0
for _ in $(seq 100); do kill -0 "$RVPP_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$RVPP_PID" 2>/dev/null; then bad "rvpp exits on SIGTERM"; else wait "$RVPP_PID" || rc=$?; check "rvpp exits on SIGTERM with status 0 (got $rc)" test "$rc" = 0; fi
RVPP_PID=
check "pod tun interfaces removed" sh -c "! ip -n $POD1 link show eth0 && ! ip -n $POD2 link show eth0"
check "XDP program removed from the uplink" sh -c "! ip -n $NODE link show eth1 | grep -q xdp"
check "no error logged" sh -c "! grep -E ': (error|panicked)' $LOG"

echo "lab: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
