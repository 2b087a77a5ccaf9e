#!/usr/bin/env bash
# Runtime figure (issue 2): the grafted library against the system library on
# a fixed WAL workload through python3 (bench/runtime.py), alternating runs,
# median of 5 each. Target: throughput ratio grafted/system >= 1.0.
#   bench/runtime.sh [path/to/grafted/libsqlite3.so.0]
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${1:-}
if [[ -z $lib ]]; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
  zip=$(go mod download -json github.com/mattn/go-sqlite3@v1.14.43 | sed -n 's/.*"Zip": "\(.*\)".*/\1/p')
  go run ./cmd/sqlite-graft compile --libc glibc --from "$zip" --out "$out" --log-level warn >/dev/null
  lib=$out/libsqlite3.so.0
fi
py=/usr/bin/python3
sys_runs=(); graft_runs=()
for i in 1 2 3 4 5; do
  sys_runs+=("$($py bench/runtime.py)")
  graft_runs+=("$(LD_PRELOAD=$(realpath "$lib") $py bench/runtime.py)")
done
python3 - "${#sys_runs[@]}" "${sys_runs[@]}" "${graft_runs[@]}" <<'PY'
import json, statistics, sys
n = int(sys.argv[1]); runs = [json.loads(x) for x in sys.argv[2:]]
s, g = runs[:n], runs[n:]
ms = statistics.median(r["ops_per_second"] for r in s)
mg = statistics.median(r["ops_per_second"] for r in g)
print(f"system  SQLite {s[0]['sqlite']}: median {ms:.0f} ops/s over {n} runs {[r['ops_per_second'] for r in s]}")
print(f"grafted SQLite {g[0]['sqlite']}: median {mg:.0f} ops/s over {n} runs {[r['ops_per_second'] for r in g]}")
print(f"throughput ratio grafted/system: {mg/ms:.3f} (target >= 1.0)")
PY
