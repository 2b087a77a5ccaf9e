"""A fixed WAL workload through python3's sqlite3 module (a real client linked
against the distro's libsqlite3.so.0): inserts in transactions, indexed range
queries, periodic checkpoints. Prints one JSON line with the SQLite version and
operations per second. Run it with and without LD_PRELOAD to compare."""
import json, os, random, sqlite3, sys, tempfile, time

ROUNDS, ROWS_PER_TX, QUERIES = 200, 100, 200

def main():
    rnd = random.Random(42)
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "bench.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
        db.execute("CREATE INDEX t_k ON t(k)")
        ops = 0
        start = time.perf_counter()
        for r in range(ROUNDS):
            db.execute("BEGIN")
            db.executemany("INSERT INTO t(k, v) VALUES (?, ?)",
                           [(rnd.randrange(1_000_000), "x" * 64) for _ in range(ROWS_PER_TX)])
            db.execute("COMMIT")
            ops += ROWS_PER_TX
            for _ in range(QUERIES // 10):
                lo = rnd.randrange(1_000_000)
                db.execute("SELECT count(*), sum(length(v)) FROM t WHERE k BETWEEN ? AND ?", (lo, lo + 5000)).fetchone()
                ops += 1
            if r % 20 == 19:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                ops += 1
        elapsed = time.perf_counter() - start
        n = db.execute("SELECT count(*) FROM t").fetchone()[0]
        assert n == ROUNDS * ROWS_PER_TX, n
        ok = db.execute("PRAGMA integrity_check").fetchone()[0]
        assert ok == "ok", ok
    print(json.dumps({"sqlite": sqlite3.sqlite_version, "ops": ops, "seconds": round(elapsed, 3),
                      "ops_per_second": round(ops / elapsed)}))

main()
