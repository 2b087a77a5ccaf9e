#!/usr/bin/env bash
# Compile figures (issue 2): wall time of `sqlite-graft compile` over a bare
# `cc` of sqlite3.c with the recipe's exact library argv (the floor), cold and
# warm (second run with the same inputs: the build cache answers).
#   bench/compile.sh [glibc|musl]
# Sources: the official 3.51.3 sqlite3.c (go-sqlite3 v1.14.43 module zip, no
# shell.c) and, for the library+shell case, the official 3.44.2 autoconf
# tarball from npm (has shell.c; given with --sha3 since it is not pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
libc=${1:-glibc}
cc=cc; [[ $libc == musl ]] && cc=musl-gcc
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
go build -o "$work/sqlite-graft" ./cmd/sqlite-graft
zip=$(go mod download -json github.com/mattn/go-sqlite3@v1.14.43 | sed -n 's/.*"Zip": "\(.*\)".*/\1/p')
tgz=$(go run ./internal/fixtures/cmd/fetch-fixtures 2>&1 | sed -n 's/.*autoconf 3.44.2: //p')
sha=$(python3 -c 'import hashlib,sys;print(hashlib.sha3_256(open(sys.argv[1],"rb").read()).hexdigest())' "$tgz")
now() { date +%s.%N; }
ratio() { python3 -c "import sys;print(f'{float(sys.argv[1])/float(sys.argv[2]):.3f}')" "$1" "$2"; }

# The floor: the recipe's library step, verbatim, on the same sqlite3.c.
"$work/sqlite-graft" fetch --from "$zip" --out "$work/src" --cache-dir "$work/cache" --log-level warn >/dev/null
argv=$(go run ./bench/planargv "$cc")
t0=$(now); (cd "$work/src" && eval "$argv"); t1=$(now)
bare=$(python3 -c "print($t1-$t0)")

run() { # name, extra args...
  local name=$1; shift
  rm -rf "$work/out"
  local a=$(now); "$work/sqlite-graft" compile --libc "$libc" --out "$work/out" --cache-dir "$work/cache" --log-level warn "$@" >/dev/null; local b=$(now)
  python3 -c "print($b-$a)"
}
cold=$(run cold --from "$zip")
warm=$(run warm --from "$zip")
rm -rf "$work/cache/builds"
cold_shell=$(run cold-shell --sqlite 3.44.2 --sha3 "$sha" --from "$tgz")
warm_shell=$(run warm-shell --sqlite 3.44.2 --sha3 "$sha" --from "$tgz")
printf 'libc=%s cc=%s\n' "$libc" "$cc"
printf 'bare cc (library argv):            %6.2f s\n' "$bare"
printf 'compile 3.51.3 library, cold:      %6.2f s  ratio %s (target <= 1.2)\n' "$cold" "$(ratio "$cold" "$bare")"
printf 'compile 3.51.3 library, warm:      %6.2f s  %s of cold (target <= 0.05)\n' "$warm" "$(ratio "$warm" "$cold")"
printf 'compile 3.44.2 library+shell, cold:%6.2f s  ratio %s\n' "$cold_shell" "$(ratio "$cold_shell" "$bare")"
printf 'compile 3.44.2 library+shell, warm:%6.2f s  %s of cold\n' "$warm_shell" "$(ratio "$warm_shell" "$cold_shell")"
