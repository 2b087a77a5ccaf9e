#!/usr/bin/env bash
# Release-gate figures (issue 8): SQLite's own tests, built from the verified
# canonical source tree of 3.53.4 (Debian's orig tarball, from the fixture
# cache) with the recipe's options. Every run starts from an empty cache.
#   bench/sqlite-tests.sh [glibc|musl] [veryquick]
# Prints: the bare compile (sqlite-graft compile of the same release's
# sqlite3.c, internal/local, cold); the testfixture build; walrestart.test and
# the wal level's wall time; the cold gate on its own (tree verify +
# testfixture build + wal level) as a ratio of the bare compile; with
# "veryquick", veryquick.test's wall time too. For musl, the one-time Tcl
# build as well. What the gate adds to a build, where it runs beside the
# library's compile (the issue's target: at most 1.0x the bare compile), is
# measured by `go test -run XXX -bench ReleaseGateFigures -benchtime 1x ./internal/cli/`.
set -euo pipefail
cd "$(dirname "$0")/.."
libc=${1:-glibc}
extra=${2:-}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
go build -o "$work/sqlite-graft" ./cmd/sqlite-graft
fx=$(go run ./internal/fixtures/cmd/fetch-fixtures 2>&1)
tree_tgz=$(ls "${SQLITE_GRAFT_FIXTURES:-$HOME/.cache/sqlite-graft/fixtures}"/debian/*-sqlite3_3.53.4.orig.tar.xz)
zip=$(go mod download -json github.com/mattn/go-sqlite3@v1.14.52 | sed -n 's/.*"Zip": "\(.*\)".*/\1/p')
now() { date +%s.%N; }
sg() { "$work/sqlite-graft" --cache-dir "$work/cache" --log-level warn "$@"; }
field() { python3 -c "import json,sys;d=json.load(open(sys.argv[1]))['sqlite_tests'];print(eval(sys.argv[2]))" "$@"; }

# The bare compile: library + nothing else, 3.53.4's official sqlite3.c.
t0=$(now); sg compile --sqlite 3.53.4 --from "$zip" --libc "$libc" --out "$work/lib" >/dev/null; t1=$(now)
bare=$(python3 -c "print($t1-$t0)")

tcl=0
if [[ $libc == musl ]]; then
  # Tcl for musl, once per machine: measured apart, then kept for the gate.
  mkdir -p "$work/cache/debian"
  cp "$(dirname "$tree_tgz")"/*-tcl8.6_*.orig.tar.gz "$work/cache/debian/"
  t0=$(now); sg check --sqlite-tests quick --sqlite 3.53.4 --libc musl --sqlite-tree "$tree_tgz" --sqlite-tests-logs "$work/logs" >/dev/null; t1=$(now)
  rm -rf "$work/cache/testfixture" "$work/cache/trees"
  tcl_and_quick=$(python3 -c "print($t1-$t0)")
fi

t0=$(now)
sg check --sqlite-tests wal --sqlite 3.53.4 --libc "$libc" --sqlite-tree "$tree_tgz" --sqlite-tests-logs "$work/logs" --json > "$work/wal.json"
t1=$(now)
gate=$(python3 -c "print($t1-$t0)")
build=$(field "$work/wal.json" "d['build_seconds']")
wal=$(field "$work/wal.json" "d['seconds']")
walrestart=$(field "$work/wal.json" "[f['seconds'] for f in d['files'] if f['file']=='walrestart.test'][0]")
tests=$(field "$work/wal.json" "f\"{d['errors']} errors out of {d['tests']} tests in {d['files_run']} files\"")
t0=$(now); sg check --sqlite-tests quick --sqlite 3.53.4 --libc "$libc" --sqlite-tree "$tree_tgz" --sqlite-tests-logs "$work/logs" >/dev/null; t1=$(now)
quick=$(python3 -c "print($t1-$t0)")

printf 'libc=%s, %d CPUs, load %s\n' "$libc" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'bare compile (sqlite-graft compile 3.53.4, cold):   %7.1f s\n' "$bare"
[[ $libc == musl ]] && printf 'Tcl for musl (once) + quick level, cold:           %7.1f s\n' "$tcl_and_quick"
printf 'testfixture build:                                  %7.1f s\n' "$build"
printf 'walrestart.test:                                    %7.1f s\n' "$walrestart"
printf 'wal level (wal*.test, 2 per CPU, slow first):       %7.1f s  (%s)\n' "$wal" "$tests"
printf 'cold gate alone (verify tree + testfixture + wal): %7.1f s  ratio %.2f of the bare compile\n' "$gate" "$(python3 -c "print($gate/$bare)")"
printf 'warm gate, quick level (testfixture cached):        %7.1f s\n' "$quick"
if [[ $extra == veryquick ]]; then
  t0=$(now); sg check --sqlite-tests veryquick --sqlite 3.53.4 --libc "$libc" --sqlite-tree "$tree_tgz" --sqlite-tests-logs "$work/logs" || true; t1=$(now)
  printf 'veryquick level (testfixture cached):               %7.1f s\n' "$(python3 -c "print($t1-$t0)")"
fi
