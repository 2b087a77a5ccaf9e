package layer

import (
	"fmt"
	"strings"
)

// Env is the environment that preloads the graft in every process of an
// image (preload: env), as KEY=value sorted by key. It is what the wrapper
// sets, minus the merging with values already present, which the image
// config does against the base's own Env.
//
// glibc matches DT_NEEDED entries against the sonames already loaded, so an
// absolute-path preload replaces the distro copy. musl never looks at
// sonames: an absolute-path preload leaves /usr/lib/libsqlite3.so.0 mapped
// too (two SQLites in one process can corrupt databases), while a bare-name
// preload found through the search path is the one copy every DT_NEEDED
// "libsqlite3.so.0" then binds to.
func Env(libc string) ([]string, error) {
	switch libc {
	case Glibc:
		return []string{"LD_PRELOAD=" + LibraryPath}, nil
	case Musl:
		return []string{"LD_LIBRARY_PATH=" + LibDir, "LD_PRELOAD=" + Soname}, nil
	}
	return nil, fmt.Errorf("layer: libc %q: want %s or %s", libc, Musl, Glibc)
}

const wrapperHead = `#!/bin/sh
# sqlite-preload: run a command with the SQLite grafted by sqlite-graft
# preloaded, and so with the WAL-reset fix, whatever SQLite it links against.
#
#   sqlite-preload COMMAND [ARG...]
#
# Not for setuid programs (the loader ignores LD_PRELOAD there), nor for
# programs with a SQLite of their own compiled in (Go, Rust "bundled",
# pysqlite3-binary, better-sqlite3): those never load libsqlite3.so.0.
`

const wrapperGlibc = `#
# glibc matches DT_NEEDED entries against the sonames already loaded, so the
# preload by absolute path replaces the distro's copy. Preloads already set
# are kept, after this one.
if [ "$#" -eq 0 ]; then
	echo "usage: sqlite-preload COMMAND [ARG...]" >&2
	exit 2
fi
case ":${LD_PRELOAD-}:" in
*:@LIB@:*) ;;
*) LD_PRELOAD="@LIB@${LD_PRELOAD:+:$LD_PRELOAD}" ;;
esac
export LD_PRELOAD
exec "$@"
`

const wrapperMusl = `#
# musl never looks at sonames: a preload by absolute path would leave the
# distro's /usr/lib/libsqlite3.so.0 mapped too, and two copies of SQLite in
# one process can corrupt databases. A bare-name preload, found first in
# @DIR@, is loaded once and every DT_NEEDED libsqlite3.so.0 binds to it.
if [ "$#" -eq 0 ]; then
	echo "usage: sqlite-preload COMMAND [ARG...]" >&2
	exit 2
fi
case "${LD_LIBRARY_PATH-}" in
@DIR@ | @DIR@:*) ;;
*) LD_LIBRARY_PATH="@DIR@${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
case ":${LD_PRELOAD-}:" in
*:@SONAME@:*) ;;
*) LD_PRELOAD="@SONAME@${LD_PRELOAD:+:$LD_PRELOAD}" ;;
esac
export LD_LIBRARY_PATH LD_PRELOAD
exec "$@"
`

// wrapperScript is the POSIX sh wrapper for libc. It only ever expands
// "$@" quoted, so every argument reaches the command unchanged.
func wrapperScript(libc string) []byte {
	body := wrapperGlibc
	if libc == Musl {
		body = wrapperMusl
	}
	return []byte(strings.NewReplacer("@LIB@", LibraryPath, "@DIR@", LibDir, "@SONAME@", Soname).Replace(wrapperHead + body))
}

// License is SQLite's public-domain dedication and the blessing that every
// SQLite source file carries in place of a licence (sqlite.org/copyright.html).
const License = `SQLite is in the public domain (SPDX: blessing).

The SQLite library and shell in this image were built from the official
SQLite sources, whose authors dedicated them to the public domain:

  All of the code and documentation in SQLite has been dedicated to the
  public domain by the authors. All code authors, and representatives of
  the companies they work for, have signed affidavits dedicating their
  contributions to the public domain and originals of those signed
  affidavits are stored in a firesafe at the main offices of Hwaci. Anyone
  is free to copy, modify, publish, use, compile, sell, or distribute the
  original SQLite code, either in source code form or as a compiled binary,
  for any purpose, commercial or non-commercial, and by any means.

  -- https://sqlite.org/copyright.html

Every SQLite source file carries, in place of a legal notice, this blessing:

  The author disclaims copyright to this source code.  In place of
  a legal notice, here is a blessing:

     May you do good and not evil.
     May you find forgiveness for yourself and forgive others.
     May you share freely, never taking more than you give.
`
