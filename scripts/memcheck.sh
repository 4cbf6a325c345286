#!/usr/bin/env bash
# Runs the tests of the crates with `unsafe` (buffers, rings, memif, drivers) under valgrind
# memcheck. Any invalid read/write, syscall argument pointing outside its buffer, or use of
# uninitialised memory fails the run.
#
# Why valgrind and not AddressSanitizer: the toolchain is stable-only; ASan would need
# RUSTC_BOOTSTRAP=1 -Zsanitizer=address and leaves std uninstrumented, and it does not check
# what the kernel writes on a syscall's behalf. valgrind's syscall wrappers know each call's
# buffer sizes, which is exactly how the mincore overrun (issue 9) is caught.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "memcheck: valgrind missing" >&2; exit 1; }

# crate:target pairs. Integration tests that time traffic (tap, af_xdp, testpmd peers) stay out:
# under valgrind's ~30x slowdown they measure valgrind, not rvpp.
targets=(
  "rvpp-dataplane:--lib"
  "rvpp-memif:--lib"
  "rvpp-memif:--test loopback"
  "rvpp-memif:--test hostile"
  "rvpp-drivers:--lib"
  "rvpp-drivers:--test golden_pcap"
  "rvpp-drivers:--test memif_device"
  "rvpp-drivers:--test af_packet"
  "rvpp-drivers:--test tap"
  "rvpp-drivers:--test af_xdp"
)
status=0
for t in "${targets[@]}"; do
  [ -n "${MEMCHECK_ONLY:-}" ] && [[ "$t" != *"$MEMCHECK_ONLY"* ]] && continue
  crate=${t%%:*}
  args=${t#*:}
  # shellcheck disable=SC2086
  exe=$(cargo test -p "$crate" $args --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1)
  [ -n "$exe" ] || { echo "memcheck: no test binary for $crate $args" >&2; status=1; continue; }
  echo "memcheck: $crate $args"
  start=$(date +%s)
  # --test-threads=2: threads are serialised by valgrind anyway; fewer means less waiting on
  # timeouts that assume real speed. RVPP_UNDER_VALGRIND lets tests widen their deadlines.
  if ! RVPP_UNDER_VALGRIND=1 valgrind --quiet --error-exitcode=97 --leak-check=no \
      --suppressions=scripts/valgrind.supp \
      --trace-children=no --fair-sched=yes "$exe" --test-threads=2 \
      >"/tmp/rvpp-memcheck-${crate}-${args// /_}.log" 2>&1; then
    echo "memcheck: FAILED $crate $args (log: /tmp/rvpp-memcheck-${crate}-${args// /_}.log)" >&2
    tail -40 "/tmp/rvpp-memcheck-${crate}-${args// /_}.log" >&2
    status=1
  fi
  grep -E "^test result" "/tmp/rvpp-memcheck-${crate}-${args// /_}.log" || true
  echo "memcheck: $crate $args took $(( $(date +%s) - start )) s"
done
exit "$status"
