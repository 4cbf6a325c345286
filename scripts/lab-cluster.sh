# The mixed-cluster lab: sourced by `scripts/lab.sh --cluster`, on its helpers (ok/bad/check,
# in_ns, wait_for, ping4/ping6, write_startup, launch_rvpp, setup_pod, check_iperf) and its
# cleanup, which stops RVPP_PIDS and deletes NSES. Not run on its own.
#
#   a1 a2 (tuns) ─ rvpp A ─ eth1 ─┐                 ┌─ eth1 ─ rvpp B ─ (tuns) b1 b2
#                                  ├─ br0 (fabric) ─┤
#                                  └─ eth1 ─ Linux C ─ (veth) c1
#
# Underlay 198.19.0.0/24 and fd00:19::/64 on the bridge: A .1, B .2, C .3. Pod blocks: a1
# 198.18.1.0/26 fd00:18:11::/64, a2 198.18.1.64/26 fd00:18:12::/64, b1 198.18.2.0/26
# fd00:18:21::/64, b2 198.18.2.64/26 fd00:18:22::/64, c1 198.18.3.0/26 fd00:18:31::/64.
# A and B route each other's first blocks over IPIP and the second ones over VXLAN in
# calico-vpp's L3 mode, each with IPv4 and IPv6 outer tunnels (calico makes one per family). Each reaches C over VXLAN in the L2 mode, per family,
# as felix's vxlan.calico / vxlan-v6.calico: VNI 4096, port 4789, VTEP MACs 0x66 + sha1(node
# name) (name + "-v6" for IPv6), VTEP addresses from each node's first block, static
# neighbour and FDB entries and onlink routes on C; static neighbours on the rvpp side.

# The VTEP MAC felix derives for a node without vxlanTunnelMACAddr: 0x66 ('f'), then the
# first 5 bytes of sha1(seed), the seed being the node name (IPv4) or name + "-v6" (IPv6).
felix_vtep_mac() {
  python3 -c 'import hashlib, sys
h = hashlib.sha1(sys.argv[1].encode()).digest()[:5]
print(":".join("%02x" % b for b in b"f" + h))' "$1"
}

NAME_A=lab-rvpp-a NAME_B=lab-rvpp-b NAME_C=lab-linux-c
MAC_A=$(felix_vtep_mac $NAME_A) MAC_A6=$(felix_vtep_mac $NAME_A-v6)
MAC_B=$(felix_vtep_mac $NAME_B) MAC_B6=$(felix_vtep_mac $NAME_B-v6)
MAC_C=$(felix_vtep_mac $NAME_C) MAC_C6=$(felix_vtep_mac $NAME_C-v6)
UP4_A=198.19.0.1 UP4_B=198.19.0.2 UP4_C=198.19.0.3
UP6_A=fd00:19::1 UP6_B=fd00:19::2 UP6_C=fd00:19::3
# VTEP addresses (calico's IPv4/IPv6VXLANTunnelAddr), from each node's first block.
VTEP4_A=198.18.1.1 VTEP4_B=198.18.2.1 VTEP4_C=198.18.3.1
VTEP6_A=fd00:18:11::1 VTEP6_B=fd00:18:21::1 VTEP6_C=fd00:18:31::1
A1_4=198.18.1.2 A1_6=fd00:18:11::2 A2_4=198.18.1.66 A2_6=fd00:18:12::2
B1_4=198.18.2.2 B1_6=fd00:18:21::2 B2_4=198.18.2.66 B2_6=fd00:18:22::2
C1_4=198.18.3.2 C1_6=fd00:18:31::2

echo "lab: cluster, namespaces ${NSES[*]}, work dir $DIR"
for ns in "${NSES[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
for ns in $NODE_C $PODA1 $PODA2 $PODB1 $PODB2 $PODC1; do
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done

# The fabric: a bridge, one veth per node (eth1 in the node, pN on the bridge).
ip -n $FABRIC link add br0 type bridge
ip -n $FABRIC link set br0 up
for n in A B C; do
  ns_var=NODE_$n
  ip -n $FABRIC link add "p$n" type veth peer name eth1 netns "${!ns_var}"
  ip -n $FABRIC link set "p$n" master br0 up
  ip -n "${!ns_var}" link set eth1 up
done

# rvpp nodes. <node> <name of its ns var> <own v4/v6 uplink> <peer rvpp v4/v6> <peer blocks>.
# Interfaces in creation order: tun0 tun1 host-eth1, then ipip0 (v4), ipip1 (v6),
# vxlan_tunnel0 (L3 v4), vxlan_tunnel1 (L3 v6), vxlan_tunnel2 (L2 v4 to C), vxlan_tunnel3 (L2 v6
# to C).
rvpp_node_cli() {
  local pod1=$1 pod2=$2 me4=$3 me6=$4 peer4=$5 peer6=$6 mac=$7 mac6=$8
  local p1_4=$9 p1_6=${10} p2_4=${11} p2_6=${12} own1_4=${13} own1_6=${14} own2_4=${15} own2_6=${16}
  cat <<EOF
create tap id 0 host-if-name eth0 host-ns $pod1 tun host-mtu-size 1400 gso
create tap id 1 host-if-name eth0 host-ns $pod2 tun host-mtu-size 1400 gso
create host-interface name eth1 gso
set interface state tun0 up
set interface state tun1 up
set interface state host-eth1 up
set interface ip address host-eth1 $me4/24
set interface ip address host-eth1 $me6/64
ip route add $own1_4/32 via tun0
ip route add $own1_6/128 via tun0
ip route add $own2_4/32 via tun1
ip route add $own2_6/128 via tun1
create ipip tunnel src $me4 dst $peer4
set interface unnumbered ipip0 use host-eth1
set interface state ipip0 up
ip route add $p1_4 via ipip0
create ipip tunnel src $me6 dst $peer6
set interface unnumbered ipip1 use host-eth1
set interface state ipip1 up
ip route add $p1_6 via ipip1
create vxlan tunnel src $me4 dst $peer4 vni 4096 l3
set interface unnumbered vxlan_tunnel0 use host-eth1
set interface state vxlan_tunnel0 up
ip route add $p2_4 via $peer4 vxlan_tunnel0
create vxlan tunnel src $me6 dst $peer6 vni 4096 l3
set interface unnumbered vxlan_tunnel1 use host-eth1
set interface state vxlan_tunnel1 up
ip route add $p2_6 via $peer6 vxlan_tunnel1
create vxlan tunnel src $me4 dst $UP4_C vni 4096
set interface mac address vxlan_tunnel2 $mac
set interface unnumbered vxlan_tunnel2 use host-eth1
set interface state vxlan_tunnel2 up
set ip neighbor vxlan_tunnel2 $VTEP4_C $MAC_C
ip route add 198.18.3.0/26 via $VTEP4_C vxlan_tunnel2
create vxlan tunnel src $me6 dst $UP6_C vni 4096
set interface mac address vxlan_tunnel3 $mac6
set interface unnumbered vxlan_tunnel3 use host-eth1
set interface state vxlan_tunnel3 up
set ip neighbor vxlan_tunnel3 $VTEP6_C $MAC_C6
ip route add fd00:18:31::/64 via $VTEP6_C vxlan_tunnel3
EOF
  # calico enables cnat's feature on every pod interface, uplink and tunnel.
  local i
  for i in tun0 tun1 host-eth1 ipip0 ipip1 vxlan_tunnel0 vxlan_tunnel1 vxlan_tunnel2 vxlan_tunnel3; do
    echo "set cnat interface $i"
  done
}
mkdir -p "$DIR/a" "$DIR/b"
rvpp_node_cli $PODA1 $PODA2 $UP4_A $UP6_A $UP4_B $UP6_B $MAC_A $MAC_A6 \
  198.18.2.0/26 fd00:18:21::/64 198.18.2.64/26 fd00:18:22::/64 $A1_4 $A1_6 $A2_4 $A2_6 >"$DIR/a/setup.cli"
rvpp_node_cli $PODB1 $PODB2 $UP4_B $UP6_B $UP4_A $UP6_A $MAC_B $MAC_B6 \
  198.18.1.0/26 fd00:18:11::/64 198.18.1.64/26 fd00:18:12::/64 $B1_4 $B1_6 $B2_4 $B2_6 >"$DIR/b/setup.cli"
for n in a b; do write_startup "$DIR/$n"; done
launch_rvpp $NODE_A "$DIR/a" "$DIR/rvpp-a.log" $PODA1 $PODA2
RVPP_PIDS+=("$LAUNCHED_PID")
launch_rvpp $NODE_B "$DIR/b" "$DIR/rvpp-b.log" $PODB1 $PODB2
RVPP_PIDS+=("$LAUNCHED_PID")
setup_pod $PODA1 $A1_4 $A1_6
setup_pod $PODA2 $A2_4 $A2_6
setup_pod $PODB1 $B1_4 $B1_6
setup_pod $PODB2 $B2_4 $B2_6
ctl_a() { "$RVPPCTL" -s "$DIR/a/cli.sock" "$@"; }
ctl_b() { "$RVPPCTL" -s "$DIR/b/cli.sock" "$@"; }
echo "lab: rvpp A pid ${RVPP_PIDS[0]}, B pid ${RVPP_PIDS[1]} up"

# The Linux node C, as felix programs it: vxlan.calico / vxlan-v6.calico on the uplink,
# learning off, the VTEP MAC from the node name, the VTEP address as /32 (/128); per remote
# VXLAN node a permanent neighbour (VTEP address -> VTEP MAC), an FDB entry (VTEP MAC ->
# node address) and the node's blocks via its VTEP address, onlink.
C=$NODE_C
ip -n $C addr add $UP4_C/24 dev eth1
ip -n $C addr add $UP6_C/64 dev eth1 nodad
in_ns $C sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n $C link add vxlan.calico type vxlan id 4096 dstport 4789 local $UP4_C dev eth1 nolearning
ip -n $C link set vxlan.calico address $MAC_C mtu 1450 up
ip -n $C addr add $VTEP4_C/32 dev vxlan.calico
ip -n $C link add vxlan-v6.calico type vxlan id 4096 dstport 4789 local $UP6_C dev eth1 nolearning
ip -n $C link set vxlan-v6.calico address $MAC_C6 mtu 1430 up
ip -n $C addr add $VTEP6_C/128 dev vxlan-v6.calico nodad
linux_peer() {
  local up4=$1 up6=$2 vtep4=$3 vtep6=$4 mac=$5 mac6=$6; shift 6
  ip -n $C neigh replace $vtep4 lladdr $mac dev vxlan.calico nud permanent
  in_ns $C bridge fdb replace $mac dev vxlan.calico dst $up4 self permanent
  ip -n $C -6 neigh replace $vtep6 lladdr $mac6 dev vxlan-v6.calico nud permanent
  in_ns $C bridge fdb replace $mac6 dev vxlan-v6.calico dst $up6 self permanent
  local b
  for b in "$@"; do
    case $b in
      *:*) ip -n $C -6 route replace $b via $vtep6 dev vxlan-v6.calico onlink ;;
      *) ip -n $C route replace $b via $vtep4 dev vxlan.calico onlink ;;
    esac
  done
}
linux_peer $UP4_A $UP6_A $VTEP4_A $VTEP6_A $MAC_A $MAC_A6 \
  198.18.1.0/26 198.18.1.64/26 fd00:18:11::/64 fd00:18:12::/64
linux_peer $UP4_B $UP6_B $VTEP4_B $VTEP6_B $MAC_B $MAC_B6 \
  198.18.2.0/26 198.18.2.64/26 fd00:18:21::/64 fd00:18:22::/64
# C's pod on a veth, its gateway C's end.
ip -n $C link add eth2 type veth peer name eth0 netns $PODC1
ip -n $C link set eth2 up
ip -n $C addr add 198.18.3.3/26 dev eth2
ip -n $C addr add fd00:18:31::3/64 dev eth2 nodad
ip -n $PODC1 addr add $C1_4/26 dev eth0
ip -n $PODC1 addr add $C1_6/64 dev eth0 nodad
ip -n $PODC1 link set eth0 up
ip -n $PODC1 route add default via 198.18.3.3
ip -n $PODC1 -6 route add default via fd00:18:31::3

# <ns>:<v4>:<v6> per pod, and which path joins two of them.
PODS=("$PODA1:$A1_4:$A1_6" "$PODA2:$A2_4:$A2_6" "$PODB1:$B1_4:$B1_6" "$PODB2:$B2_4:$B2_6" "$PODC1:$C1_4:$C1_6")
label() { basename "$1" | sed "s/^rvpp-lab-$ID-//"; }
path() {
  case "$(label "$1")$(label "$2")" in
    a1b1|b1a1) echo "IPIP" ;;
    a2b2|b2a2) echo "VXLAN L3" ;;
    a?b?|b?a?) echo "IPIP one way, VXLAN L3 the other" ;;
    *c1|c1*) echo "VXLAN L2 (Linux)" ;;
  esac
}

echo "== ping between nodes' pods (every direction, IPv4 and IPv6)"
for from in "${PODS[@]}"; do
  IFS=: read -r fns _ _ <<<"$from"
  for to in "${PODS[@]}"; do
    IFS=: read -r tns t4 t6rest <<<"$to"
    t6=${to#*:*:}
    # Pods of one node: lab.sh's single-node run covers them.
    [ "$(label "$fns" | cut -c1)" = "$(label "$tns" | cut -c1)" ] && continue
    what="$(label "$fns") -> $(label "$tns") over $(path "$fns" "$tns")"
    check "ping $what (IPv4)" wait_for 3 ping4 "$fns" "$t4"
    check "ping $what (IPv6)" wait_for 3 ping6 "$fns" "$t6"
  done
done

echo "== iperf3 TCP between nodes' pods (below ${MIN_TCP_MBPS:=50} Mbit/s fails: lost segments)"
export MIN_TCP_MBPS
for pair in a1:b1 b1:a1 a2:b2 b2:a2 a1:c1 c1:a1 b2:c1 c1:b2; do
  f=${pair%:*} t=${pair#*:}
  for p in "${PODS[@]}"; do
    [ "$(label "${p%%:*}")" = "$f" ] && fns=${p%%:*}
    [ "$(label "${p%%:*}")" = "$t" ] && { tns=${p%%:*}; t4=$(cut -d: -f2 <<<"$p"); t6=${p#*:*:}; }
  done
  check_iperf "TCP $f -> $t over $(path "$fns" "$tns")" "$fns" "$tns" "$t4"
done
# IPv6: each direction between two nodes once, each tunnel kind at least once.
check_iperf "TCP a1 -> b1 over IPIP (IPv6)" $PODA1 $PODB1 $B1_6
check_iperf "TCP b2 -> a2 over VXLAN L3 (IPv6)" $PODB2 $PODA2 $A2_6
check_iperf "TCP a2 -> c1 over VXLAN L2 (Linux, IPv6)" $PODA2 $PODC1 $C1_6
check_iperf "TCP c1 -> a1 over VXLAN L2 (Linux, IPv6)" $PODC1 $PODA1 $A1_6
check_iperf "TCP b1 -> c1 over VXLAN L2 (Linux, IPv6)" $PODB1 $PODC1 $C1_6
check_iperf "TCP c1 -> b2 over VXLAN L2 (Linux, IPv6)" $PODC1 $PODB2 $B2_6

echo "== services whose backend is on another node (cnat DNAT, then the tunnel)"
ctl_a cnat translation add proto tcp vip 198.18.100.1 5201 to $C1_4 5201 >/dev/null
ctl_b cnat translation add proto tcp vip 198.18.100.2 5201 to $A2_4 5201 >/dev/null
ctl_a cnat translation add proto tcp vip fd00:18:100::1 5201 to $B1_6 5201 >/dev/null
check_service "TCP a1 -> ClusterIP 198.18.100.1:5201 -> c1 over VXLAN L2 (Linux)" \
  $PODA1 $PODC1 $C1_4 198.18.100.1 5201
check_service "TCP b1 -> ClusterIP 198.18.100.2:5201 -> a2 over VXLAN L3" \
  $PODB1 $PODA2 $A2_4 198.18.100.2 5201
check_service "TCP a1 -> ClusterIP [fd00:18:100::1]:5201 -> b1 over IPIP (IPv6)" \
  $PODA1 $PODB1 $B1_6 fd00:18:100::1 5201

# Each path carried what it should, and nothing fell on the floor on the way.
for n in a b; do
  errs=$(ctl_$n show errors)
  # Every tunnel node carried packets (encap is named by the inner family, decap by the outer).
  for node in ipip4-encap ipip6-encap ipip4-input ipip6-input \
    vxlan4-encap vxlan6-encap vxlan4-input vxlan6-input; do
    c=$(awk -v n="$node" '$2 == n && /packets (en|de)capsulated/ {s += $1} END {print s + 0}' <<<"$errs")
    check "rvpp $n: $node counted $c packets" test "$c" -gt 0
  done
  drops=$(grep -E '(vxlan|ipip).*\(dropped\)' <<<"$errs" || true)
  check "rvpp $n: no vxlan/ipip drops" test -z "$drops"
  [ -z "$drops" ] || sed 's/^/        /' <<<"$drops"
done
for dev in vxlan.calico vxlan-v6.calico; do
  rx=$(in_ns $C cat "/sys/class/net/$dev/statistics/rx_packets")
  check "Linux C: $dev decapsulated $rx packets from the rvpp nodes" test "$rx" -gt 0
done

# --keep: leave the cluster running for a look (cleanup waits for enter), no shutdown checks.
[ "$KEEP" = 1 ] && return 0
echo "== shutdown"
for i in 0 1; do
  pid=${RVPP_PIDS[$i]}
  kill -TERM "$pid"
  rc=0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then bad "rvpp $i exits on SIGTERM"; else wait "$pid" || rc=$?; check "rvpp $i exits on SIGTERM with status 0 (got $rc)" test "$rc" = 0; fi
done
RVPP_PIDS=()
check "pod tun interfaces removed" sh -c "! ip -n $PODA1 link show eth0 && ! ip -n $PODB2 link show eth0"
check "no error logged" sh -c "! grep -hE ': (error|panicked)' $DIR/rvpp-a.log $DIR/rvpp-b.log"
