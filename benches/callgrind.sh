#!/usr/bin/env bash
# Client instructions per call under callgrind: N and 2N calls per client, (I(2N) - I(N)) / N;
# and allocations per call, counted by the bench's global allocator in a native run of N calls.
# Usage: benches/callgrind.sh [N]   (default N=2000; needs valgrind)
set -euo pipefail
N=${1:-2000}
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
BIN=$(cargo bench -p sdk-benches --bench instructions --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*instructions[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$BIN" ] || { echo "could not build the instructions bench"; exit 1; }
SERVER_OUT=$(mktemp)
"$BIN" serve-fixed >"$SERVER_OUT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -f "$SERVER_OUT"' EXIT
for _ in $(seq 50); do [ -s "$SERVER_OUT" ] && break; sleep 0.1; done
URL=$(head -1 "$SERVER_OUT")
count() { # mode n -> total instructions of the client process
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$2" "$URL" 2>&1 \
    | grep -o 'Collected : [0-9]*' | awk '{print $3}'
}
allocations() { # mode n -> allocations per call
  "$BIN" "$1" "$2" "$URL" 2>&1 | grep -o 'allocations per call: [0-9.]*' | awk '{print $4}'
}
printf '%-18s %14s %12s\n' client 'instr/call' 'allocs/call'
declare -A PER
for mode in hyper reqwest sdk sdk-typed sdk-typed-metrics sdk-cached sdk-open middleware feign sdk-discovered sdk-versioned; do
  a=$(count "$mode" "$N"); b=$(count "$mode" $((2 * N)))
  PER[$mode]=$(( (b - a) / N ))
  printf '%-18s %14d %12s\n' "$mode" "${PER[$mode]}" "$(allocations "$mode" "$N")"
done
awk -v s="${PER[sdk]}" -v t="${PER[sdk-typed]}" -v h="${PER[hyper]}" -v r="${PER[reqwest]}" -v m="${PER[sdk-typed-metrics]}" -v d="${PER[sdk-discovered]}" -v v="${PER[sdk-versioned]}" 'BEGIN {
  printf "sdk / hyper-util   %.2fx (target <= 1.15x)\nreqwest / hyper-util %.2fx\ngenerated - ad-hoc %+d instructions\nPrometheus recorder installed: %+d instructions per call\nversion requirement (^2): %+d instructions per call\n", s / h, r / h, t - s, m - t, v - d }'
