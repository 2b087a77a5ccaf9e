//go:build ignore

/* The constraint above keeps the go tool from treating this file as cgo
 * source; testbase embeds it and compiles it with musl-gcc or cc. */

/*
 * sqlite-client: the stand-in for a distro program linked against the
 * distro's libsqlite3.so.0 (a test base's /usr/bin/sqlite-client).
 *
 *   sqlite-client             print sqlite_version() and sqlite_source_id(),
 *                             one per line, from the library the loader bound
 *   sqlite-client DB SQL...   run each SQL on DB, print rows as a|b|c
 *
 * The prototypes are declared here, so no -dev package is needed.
 */
#include <stdio.h>

typedef struct sqlite3 sqlite3;

int sqlite3_open(const char *, sqlite3 **);
int sqlite3_close(sqlite3 *);
int sqlite3_exec(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **);
const char *sqlite3_errmsg(sqlite3 *);

static int row(void *unused, int n, char **values, char **names) {
	(void)unused;
	(void)names;
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? "|" : "", values[i] ? values[i] : "");
	putchar('\n');
	return 0;
}

int main(int argc, char **argv) {
	const char *path = argc > 1 ? argv[1] : ":memory:";
	sqlite3 *db = NULL;
	if (sqlite3_open(path, &db) != 0) {
		fprintf(stderr, "sqlite-client: %s: %s\n", path, db ? sqlite3_errmsg(db) : "out of memory");
		return 1;
	}
	if (argc == 1) {
		if (sqlite3_exec(db, "SELECT sqlite_version(); SELECT sqlite_source_id();", row, NULL, NULL) != 0) {
			fprintf(stderr, "sqlite-client: %s\n", sqlite3_errmsg(db));
			return 1;
		}
	}
	for (int i = 2; i < argc; i++) {
		if (sqlite3_exec(db, argv[i], row, NULL, NULL) != 0) {
			fprintf(stderr, "sqlite-client: %s: %s\n", argv[i], sqlite3_errmsg(db));
			return 1;
		}
	}
	sqlite3_close(db);
	return 0;
}
