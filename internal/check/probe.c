//go:build ignore

/* The constraint above keeps the go tool from treating this file as cgo
 * source (a .c file in a package without cgo is a build error); the check
 * embeds it and compiles it with the target's own C compiler. */

/*
 * probe: a small SQLite client that internal/check compiles and runs under
 * the same dynamic-loader setup as production (LD_PRELOAD on glibc, bare-name
 * resolution on musl), so every answer comes from the library the loader
 * really bound, and /proc/self/maps shows which SQLite copies are mapped.
 *
 *   probe info                       JSON: identity, compile options, features, mapped files
 *   probe stress DB W T R C          the WAL stress test in one process tree: create DB in
 *                                    WAL mode, fork W writer processes of T threads (one
 *                                    connection each, R rows each, one transaction per row)
 *                                    and C checkpointers (wal_checkpoint PASSIVE/FULL/
 *                                    RESTART/TRUNCATE in a loop), wait for the writers, stop
 *                                    the checkpointers (a pipe closes), verify; JSON: what
 *                                    each process counted and what verify found
 *   probe verify DB                  JSON: integrity_check and rows per (writer, thread)
 *   probe whoami                     JSON: real and effective uid and gid, the environment
 *
 * The stress test needs nothing from its caller but argv and a directory for DB
 * that it alone writes: the caller only reads stdout, never a file the probe (or a
 * library the image preloads into it) could have replaced.
 *
 * The prototypes are declared here rather than taken from <sqlite3.h> so the
 * probe builds without a -dev package, against any libsqlite3.so.0. Symbols
 * that a build may lack (sqlite3_table_column_metadata) are looked up with
 * dlsym, so their absence is a failed probe, not a load failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef long long sqlite3_int64;

#define SQLITE_OK 0
#define SQLITE_BUSY 5
#define SQLITE_LOCKED 6
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_OPEN_READWRITE 0x00000002
#define SQLITE_OPEN_CREATE 0x00000004
#define SQLITE_OPEN_NOMUTEX 0x00008000

int sqlite3_open_v2(const char *, sqlite3 **, int, const char *);
int sqlite3_close(sqlite3 *);
int sqlite3_exec(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **);
void sqlite3_free(void *);
int sqlite3_prepare_v2(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
int sqlite3_step(sqlite3_stmt *);
int sqlite3_reset(sqlite3_stmt *);
int sqlite3_finalize(sqlite3_stmt *);
int sqlite3_bind_int64(sqlite3_stmt *, int, sqlite3_int64);
const unsigned char *sqlite3_column_text(sqlite3_stmt *, int);
sqlite3_int64 sqlite3_column_int64(sqlite3_stmt *, int);
const char *sqlite3_errmsg(sqlite3 *);
int sqlite3_busy_timeout(sqlite3 *, int);
int sqlite3_threadsafe(void);
int sqlite3_libversion_number(void);

typedef int (*column_metadata_fn)(sqlite3 *, const char *, const char *, const char *,
                                  const char **, const char **, int *, int *, int *);

static void die(const char *what, const char *msg) {
	fprintf(stderr, "probe: %s: %s\n", what, msg);
	exit(2);
}

/* JSON output helpers: the Go side parses everything the probe prints. */
static void jstr(const char *s) {
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static sqlite3 *open_db(const char *path) {
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		die(path, db ? sqlite3_errmsg(db) : "out of memory");
	return db;
}

static void exec_or_die(sqlite3 *db, const char *sql) {
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		die(sql, err ? err : sqlite3_errmsg(db));
}

/* ---- info ---- */

struct feature {
	const char *name;
	const char *setup; /* may be NULL */
	const char *query; /* first column of the first row must be 1 */
};

static const struct feature features[] = {
	{"fts3", "CREATE VIRTUAL TABLE f USING fts3(x); INSERT INTO f VALUES('hello world');",
	 "SELECT count(*) = 1 FROM f WHERE f MATCH 'hello'"},
	{"fts4", "CREATE VIRTUAL TABLE f USING fts4(x); INSERT INTO f VALUES('hello world');",
	 "SELECT count(*) = 1 FROM f WHERE f MATCH 'world'"},
	{"fts5", "CREATE VIRTUAL TABLE f USING fts5(x); INSERT INTO f VALUES('hello world');",
	 "SELECT count(*) = 1 FROM f WHERE f MATCH 'hello'"},
	{"rtree", "CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx); INSERT INTO r VALUES(1, 0, 10);",
	 "SELECT count(*) = 1 FROM r WHERE minx <= 5 AND maxx >= 5"},
	{"geopoly", NULL, "SELECT geopoly_area('[[0,0],[2,0],[2,2],[0,2],[0,0]]') = 4.0"},
	{"dbstat", "CREATE TABLE t(x); INSERT INTO t VALUES(1);",
	 "SELECT count(*) > 0 FROM dbstat WHERE name = 't'"},
	{"json", NULL, "SELECT json_extract('{\"a\":{\"b\":[1,2,3]}}', '$.a.b[2]') = 3"},
	{"math", NULL, "SELECT sqrt(16) = 4.0 AND ln(1) = 0.0"},
	{"soundex", NULL, "SELECT soundex('Robert') = 'R163'"},
};

/* run_feature returns NULL when the probe passed, else a malloc'd reason. */
static char *run_feature(const struct feature *f) {
	sqlite3 *db = open_db(":memory:");
	char *err = NULL, *reason = NULL;
	sqlite3_stmt *st = NULL;
	if (f->setup && sqlite3_exec(db, f->setup, NULL, NULL, &err) != SQLITE_OK) {
		reason = strdup(err ? err : sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_prepare_v2(db, f->query, -1, &st, NULL) != SQLITE_OK) {
		reason = strdup(sqlite3_errmsg(db));
		goto out;
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		reason = strdup(rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(db));
	else if (sqlite3_column_int64(st, 0) != 1)
		reason = strdup("wrong result");
out:
	sqlite3_free(err);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return reason;
}

static char *column_metadata(void) {
	column_metadata_fn fn = (column_metadata_fn)dlsym(RTLD_DEFAULT, "sqlite3_table_column_metadata");
	if (!fn)
		return strdup("sqlite3_table_column_metadata is not exported (SQLITE_ENABLE_COLUMN_METADATA)");
	sqlite3 *db = open_db(":memory:");
	exec_or_die(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
	const char *type = NULL, *coll = NULL;
	int notnull = 0, pk = 0, autoinc = 0;
	char *reason = NULL;
	if (fn(db, "main", "t", "name", &type, &coll, &notnull, &pk, &autoinc) != SQLITE_OK)
		reason = strdup(sqlite3_errmsg(db));
	else if (!type || strcmp(type, "TEXT") != 0 || !notnull || pk)
		reason = strdup("wrong metadata for t.name");
	sqlite3_close(db);
	return reason;
}

static void print_feature(const char *name, char *reason, int first) {
	printf("%s\n    ", first ? "" : ",");
	jstr(name);
	printf(": {\"ok\": %s, \"error\": ", reason ? "false" : "true");
	jstr(reason ? reason : "");
	printf("}");
	free(reason);
}

/* print_mapped lists every distinct file mapped into this process; the Go side
 * decides which of them are SQLite libraries. */
static void print_mapped(void) {
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		die("/proc/self/maps", strerror(errno));
	char line[4096], *seen[512];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long inode = 0;
		int off = 0;
		if (sscanf(line, "%*s %*s %*s %*s %lu %n", &inode, &off) < 1 || inode == 0)
			continue;
		char *path = line + off;
		path[strcspn(path, "\n")] = 0;
		if (path[0] != '/')
			continue;
		int dup = 0;
		for (int i = 0; i < n && !dup; i++)
			dup = strcmp(seen[i], path) == 0;
		if (dup || n == 512)
			continue;
		seen[n] = strdup(path);
		printf("%s\n    {\"path\": ", n ? "," : "");
		jstr(path);
		printf(", \"inode\": %lu}", inode);
		n++;
	}
	fclose(f);
}

static int cmd_info(void) {
	sqlite3 *db = open_db(":memory:");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT sqlite_version(), sqlite_source_id()", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		die("sqlite_version()", sqlite3_errmsg(db));
	printf("{\n  \"version\": ");
	jstr((const char *)sqlite3_column_text(st, 0));
	printf(",\n  \"source_id\": ");
	jstr((const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	printf(",\n  \"version_number\": %d,\n  \"threadsafe\": %d,\n  \"compile_options\": [",
	       sqlite3_libversion_number(), sqlite3_threadsafe());
	if (sqlite3_prepare_v2(db, "PRAGMA compile_options", -1, &st, NULL) != SQLITE_OK)
		die("PRAGMA compile_options", sqlite3_errmsg(db));
	for (int i = 0; sqlite3_step(st) == SQLITE_ROW; i++) {
		printf("%s", i ? ", " : "");
		jstr((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);

	printf("],\n  \"features\": {");
	for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
		print_feature(features[i].name, run_feature(&features[i]), i == 0);
	print_feature("column_metadata", column_metadata(), 0);
	printf("\n  },\n  \"mapped\": [");
	print_mapped();
	printf("\n  ]\n}\n");
	return 0;
}

/* ---- stress ---- */

static void sleep_ms(int ms) {
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

static void stress_init(const char *path) {
	sqlite3 *db = open_db(path);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		die("PRAGMA journal_mode=WAL", sqlite3_errmsg(db));
	if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		die("PRAGMA journal_mode=WAL", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	exec_or_die(db, "CREATE TABLE IF NOT EXISTS t(writer INTEGER NOT NULL, thread INTEGER NOT NULL, "
	                "seq INTEGER NOT NULL, pad BLOB, PRIMARY KEY(writer, thread, seq))");
	sqlite3_close(db);
}

/* What the processes of the stress test count lives in one shared anonymous
 * mapping: the parent reads it after each child has ended. */
struct writer {
	pthread_t tid;
	const char *path;
	long id, thread, rows;
	long committed, busy;
	char error[256];
};

struct checkpointer {
	long done[4], incomplete[4], errors;
	char lasterr[256];
};

/* writer_run inserts rows one transaction each on its own connection and
 * counts only what SQLite reported committed. */
static void *writer_run(void *arg) {
	struct writer *w = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open_v2(w->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(w->error, sizeof w->error, "open: %s", db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(db, 10000);
	/* The usual WAL setting of applications; commits without fsync. */
	sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, "INSERT INTO t(writer, thread, seq, pad) VALUES(?, ?, ?, randomblob(200))", -1, &st,
	                       NULL) != SQLITE_OK) {
		snprintf(w->error, sizeof w->error, "prepare: %s", sqlite3_errmsg(db));
		goto out;
	}
	for (long seq = 0; seq < w->rows; seq++) {
		time_t start = time(NULL);
		for (;;) {
			sqlite3_bind_int64(st, 1, w->id);
			sqlite3_bind_int64(st, 2, w->thread);
			sqlite3_bind_int64(st, 3, seq);
			int rc = sqlite3_step(st);
			sqlite3_reset(st);
			if (rc == SQLITE_DONE) {
				w->committed++;
				break;
			}
			if (busy(rc) && time(NULL) - start < 60) {
				w->busy++;
				sleep_ms(1);
				continue;
			}
			snprintf(w->error, sizeof w->error, "insert seq %ld: %s (%d)", seq, sqlite3_errmsg(db), rc);
			goto out;
		}
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

/* run_writer is one writer process: threads connections, joined. */
static void run_writer(struct writer *ws, long threads) {
	for (long i = 0; i < threads; i++)
		if (pthread_create(&ws[i].tid, NULL, writer_run, &ws[i]) != 0) {
			snprintf(ws[i].error, sizeof ws[i].error, "pthread_create: %s", strerror(errno));
			threads = i;
		}
	for (long i = 0; i < threads; i++)
		pthread_join(ws[i].tid, NULL);
}

static const char *modes[] = {"PASSIVE", "FULL", "RESTART", "TRUNCATE"};

/* stopped reports whether the read end of the stop pipe says end of file:
 * the parent closed the write end, or died. */
static int stopped(int fd) {
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

/* run_checkpointer checkpoints in a loop, cycling the four modes, until
 * stopfd says stop. */
static void run_checkpointer(const char *path, int stopfd, struct checkpointer *c) {
	sqlite3 *db = open_db(path);
	sqlite3_busy_timeout(db, 1000);
	for (long i = 0; !stopped(stopfd); i++) {
		int m = i % 4;
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA wal_checkpoint(%s)", modes[m]);
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			/* Columns: busy, log frames, checkpointed frames. */
			if (sqlite3_column_int64(st, 0))
				c->incomplete[m]++;
			else
				c->done[m]++;
		} else if (busy(rc)) {
			c->incomplete[m]++;
		} else {
			c->errors++;
			snprintf(c->lasterr, sizeof c->lasterr, "%s: %s (%d)", sql, sqlite3_errmsg(db), rc);
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

/* spawn forks a child that dies with its parent and closes the write end of
 * the stop pipe (else the checkpointers would never see end of file). */
static pid_t spawn(int stop[2]) {
	pid_t parent = getpid();
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(3);
		close(stop[1]);
	}
	return pid;
}

/* status describes how a child ended; "" is a normal exit 0. */
static void status(pid_t pid, char *buf, size_t n) {
	int st = 0;
	buf[0] = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			snprintf(buf, n, "waitpid: %s", strerror(errno));
			return;
		}
	if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d", WTERMSIG(st));
	else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		snprintf(buf, n, "exit status %d", WEXITSTATUS(st));
}

static void print_verify(const char *path);

static int cmd_stress(const char *path, long writers, long threads, long rows, long ckpts) {
	if (writers < 1 || writers > 256 || threads < 1 || threads > 256 || rows < 1 || ckpts < 0 || ckpts > 64)
		die("stress", "want 1..256 writers, 1..256 threads, rows >= 1, 0..64 checkpointers");
	double start = now();
	stress_init(path);
	size_t size = sizeof(struct writer) * writers * threads + sizeof(struct checkpointer) * (ckpts ? ckpts : 1);
	void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap", strerror(errno));
	struct writer *ws = mem;
	struct checkpointer *cs = (struct checkpointer *)(ws + writers * threads);
	int stop[2];
	if (pipe(stop) != 0)
		die("pipe", strerror(errno));

	pid_t *cpid = calloc(ckpts ? ckpts : 1, sizeof *cpid), *wpid = calloc(writers, sizeof *wpid);
	for (long i = 0; i < ckpts; i++)
		if ((cpid[i] = spawn(stop)) == 0) {
			run_checkpointer(path, stop[0], &cs[i]);
			_exit(0);
		}
	for (long i = 0; i < writers; i++) {
		struct writer *w = ws + i * threads;
		for (long t = 0; t < threads; t++)
			w[t] = (struct writer){.path = path, .id = i, .thread = t, .rows = rows};
		if ((wpid[i] = spawn(stop)) == 0) {
			close(stop[0]);
			run_writer(w, threads);
			_exit(0);
		}
	}
	close(stop[0]);

	printf("{\"writers\": [");
	for (long i = 0; i < writers; i++) {
		char st[64];
		status(wpid[i], st, sizeof st);
		printf("%s\n  {\"writer\": %ld, \"status\": ", i ? "," : "", i);
		jstr(st);
		printf(", \"threads\": [");
		for (long t = 0; t < threads; t++) {
			struct writer *w = &ws[i * threads + t];
			printf("%s{\"thread\": %ld, \"committed\": %ld, \"busy\": %ld, \"error\": ", t ? ", " : "", t,
			       w->committed, w->busy);
			jstr(w->error);
			printf("}");
		}
		printf("]}");
	}
	/* The writers are done: closing the write end is end of file for every
	 * checkpointer. */
	close(stop[1]);
	printf("\n], \"checkpointers\": [");
	for (long i = 0; i < ckpts; i++) {
		char st[64];
		status(cpid[i], st, sizeof st);
		struct checkpointer *c = &cs[i];
		printf("%s\n  {\"checkpointer\": %ld, \"status\": ", i ? "," : "", i);
		jstr(st);
		printf(", \"completed\": {");
		for (int m = 0; m < 4; m++)
			printf("%s\"%s\": %ld", m ? ", " : "", modes[m], c->done[m]);
		printf("}, \"incomplete\": {");
		for (int m = 0; m < 4; m++)
			printf("%s\"%s\": %ld", m ? ", " : "", modes[m], c->incomplete[m]);
		printf("}, \"errors\": %ld, \"last_error\": ", c->errors);
		jstr(c->lasterr);
		printf("}");
	}
	printf("\n], \"verify\": ");
	print_verify(path);
	printf(", \"seconds\": %.3f}\n", now() - start);
	return 0;
}

/* print_verify prints integrity_check and the rows per (writer, thread) as
 * one JSON object. */
static void print_verify(const char *path) {
	sqlite3 *db = open_db(path);
	sqlite3_busy_timeout(db, 10000);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
		die("PRAGMA integrity_check", sqlite3_errmsg(db));
	printf("{\"integrity\": [");
	int rc, i;
	for (i = 0; (rc = sqlite3_step(st)) == SQLITE_ROW; i++) {
		printf("%s", i ? ", " : "");
		jstr((const char *)sqlite3_column_text(st, 0));
	}
	if (rc != SQLITE_DONE) {
		printf("%s", i ? ", " : "");
		jstr(sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	printf("], \"rows\": [");
	if (sqlite3_prepare_v2(db, "SELECT writer, thread, count(*), min(seq), max(seq) FROM t GROUP BY 1, 2 ORDER BY 1, 2",
	                       -1, &st, NULL) != SQLITE_OK)
		die("SELECT", sqlite3_errmsg(db));
	for (i = 0; (rc = sqlite3_step(st)) == SQLITE_ROW; i++)
		printf("%s\n  {\"writer\": %lld, \"thread\": %lld, \"count\": %lld, \"min\": %lld, \"max\": %lld}",
		       i ? "," : "", sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
		       sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4));
	printf("\n], \"error\": ");
	jstr(rc == SQLITE_DONE ? "" : sqlite3_errmsg(db));
	printf("}");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int cmd_verify(const char *path) {
	print_verify(path);
	printf("\n");
	return 0;
}

/* ---- whoami: who the process runs as, and with which environment (the
 * image check runs it as the image's user, under the image's environment) ---- */

extern char **environ;

static int cmd_whoami(void) {
	printf("{\"uid\": %lu, \"euid\": %lu, \"gid\": %lu, \"egid\": %lu, \"env\": [", (unsigned long)getuid(),
	       (unsigned long)geteuid(), (unsigned long)getgid(), (unsigned long)getegid());
	for (char **e = environ; e && *e; e++) {
		printf("%s", e == environ ? "" : ", ");
		jstr(*e);
	}
	printf("]}\n");
	return 0;
}

static void usage(void) {
	fprintf(stderr, "usage: probe info | stress DB WRITERS THREADS ROWS CHECKPOINTERS | verify DB | whoami\n");
	exit(2);
}

int main(int argc, char **argv) {
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "info") && argc == 2)
		return cmd_info();
	if (!strcmp(cmd, "stress") && argc == 7)
		return cmd_stress(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]), atol(argv[6]));
	if (!strcmp(cmd, "verify") && argc == 3)
		return cmd_verify(argv[2]);
	if (!strcmp(cmd, "whoami") && argc == 2)
		return cmd_whoami();
	usage();
	return 2;
}
