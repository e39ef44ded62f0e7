//! The benchmark command end to end on a tiny data set: COPY load with index rebuild, the in-process embedding
//! server and runtime, MCP sessions over HTTP, and pgbench replaying `search::hybrid_sql`. It pins that the
//! benchmark keeps working as the search SQL changes (a parameter added to the statement but not to
//! `HybridParams::text_binds` fails here), not its numbers.

use std::{path::PathBuf, time::Duration};

use paddock_lab::bench::{self, BenchOptions};
use sqlx::PgPool;

/// A tiny data set in the test's own database, the shape both tests start from.
fn small_options(db: &str, seed: u64) -> BenchOptions {
    let pg_bin = std::env::var("PADDOCK_PG_BIN")
        .expect("PADDOCK_PG_BIN must name the PostgreSQL bin dir (eval \"$(scripts/postgres.sh start)\" sets it)");
    BenchOptions {
        database_url: admin_url(db),
        runtime_database_url: None,
        tenants: 2,
        docs_per_tenant: 150,
        queries: 4,
        concurrency: vec![1, 2],
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        seed,
        query_skip_ranks: paddock_lab::bench::QUERY_SKIP_RANKS,
        pg_bin: PathBuf::from(pg_bin),
        pool_size: 4,
        reload: false,
        lexical_weight: 1.0,
        vector_weight: 1.0,
        model_dir: None,
    }
}

fn admin_url(db: &str) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut url = reqwest::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(db);
    url.to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn bench_loads_drives_the_runtime_and_replays_the_same_sql_under_pgbench(admin: PgPool) {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    let opts = small_options(&db, 7);
    let report = bench::run(opts.clone()).await.expect("the benchmark runs");
    assert_eq!(report.documents, 300);
    assert!(report.loaded.is_some());
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert!(row.requests > 0 && row.req_per_sec > 0.0, "{row:?}");
        assert_eq!((row.errors, row.degraded), (0, 0), "{row:?}");
        assert!(
            row.p50_ms <= row.p95_ms && row.p95_ms <= row.p99_ms,
            "{row:?}"
        );
        assert!(row.pgbench.tps > 0.0 && row.pgbench.p99_ms > 0.0, "{row:?}");
    }
    assert!(report.overhead.verify_us > 0.0 && report.overhead.verified_again_us > 0.0);
    assert!(report.table().contains("| 2 |"));
    // The audit comparison: every search recorded once by the sink in use, none with the trail off.
    let sinks: Vec<(&str, f64)> = report
        .audit
        .iter()
        .map(|a| (a.sink, a.events_per_request))
        .collect();
    assert_eq!(sinks.len(), 3, "{sinks:?}");
    assert_eq!(sinks[0], ("off", 0.0));
    for (sink, per_request) in &sinks[1..] {
        assert!(
            (1.0..1.1).contains(per_request),
            "{sink}: {per_request} events per request"
        );
    }
    assert!(report.table().contains("| database |"));
    // The load rebuilt every index of every tenant's partition, not only the parent's definitions.
    let partitions: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT p.inhrelid::regclass::text, \
                (SELECT count(*) FROM pg_index x WHERE x.indrelid = p.inhrelid AND x.indisvalid), \
                (SELECT count(*) FROM pg_index x WHERE x.indrelid = p.inhparent AND x.indisvalid) \
         FROM pg_inherits p WHERE p.inhparent = 'documents'::regclass",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(partitions.len(), 2, "{partitions:?}");
    for (partition, valid, of_parent) in &partitions {
        assert!(
            *of_parent >= 5,
            "the parent's indexes, all valid: {partitions:?}"
        );
        assert_eq!(valid, of_parent, "{partition}: {partitions:?}");
    }

    // A second run finds the same data set and does not load it again; with the vector arm off, neither the
    // runtime nor pgbench embeds or binds a query vector.
    let again = bench::run(BenchOptions {
        concurrency: vec![1],
        vector_weight: 0.0,
        ..opts
    })
    .await
    .expect("the benchmark runs again");
    assert!(again.loaded.is_none());
    assert_eq!(again.documents, 300);
    assert_eq!(
        (again.rows[0].errors, again.rows[0].degraded),
        (0, 0),
        "{:?}",
        again.rows[0]
    );
    assert!(again.rows[0].pgbench.tps > 0.0);
}

/// The local-model mode on the same tiny data set: the raw model, uncached and cached runtime runs and pgbench all
/// produce rows, the uncached run really misses the cache and the cached run really hits it (read from the
/// runtime's `/metrics`). Needs `PADDOCK_MODEL_DIR`; without it the test says so and returns.
#[sqlx::test(migrations = "../migrations")]
async fn bench_with_the_local_model_measures_the_model_uncached_and_cached_runs(admin: PgPool) {
    let Some(model_dir) = std::env::var_os("PADDOCK_MODEL_DIR").filter(|d| !d.is_empty()) else {
        eprintln!("notice: PADDOCK_MODEL_DIR is unset; skipping the local-model benchmark test");
        return;
    };
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .unwrap();
    let opts = BenchOptions {
        docs_per_tenant: 100,
        concurrency: vec![1, 3],
        model_dir: Some(PathBuf::from(model_dir)),
        ..small_options(&db, 11)
    };
    let report = bench::run(opts)
        .await
        .expect("the benchmark runs with the local model");
    assert_eq!(report.model.len(), 2);
    for m in &report.model {
        for r in [&m.raw, &m.uncached, &m.cached] {
            assert!(r.requests > 0 && r.req_per_sec > 0.0, "{m:?}");
            assert_eq!((r.errors, r.degraded), (0, 0), "{m:?}");
        }
        // Every uncached request embedded its query: no hit, one miss each.
        assert_eq!(m.uncached_cache.hits, 0, "{m:?}");
        assert_eq!(m.uncached_cache.misses, m.uncached.requests as u64, "{m:?}");
        // The pool was embedded beforehand: every cached request hit.
        assert_eq!(m.cached_cache.hits, m.cached.requests as u64, "{m:?}");
        assert_eq!(m.cached_cache.misses, 0, "{m:?}");
        assert!(m.cached.pgbench.tps > 0.0, "{m:?}");
        assert!(m.uncached_ratio() > 0.0);
    }
    let docs = report
        .documents_embedded
        .as_ref()
        .expect("the local-model run embeds documents too");
    assert!(
        docs.documents > 0 && docs.per_sec > 0.0 && docs.tokens_per_document > 1.0,
        "{docs:?}"
    );
    let table = report.table();
    assert!(
        table.contains("raw model queries/s") && table.contains("| 3 |"),
        "{table}"
    );
    assert!(table.contains("documents/s"), "{table}");
    assert!(report.overhead.ping.is_empty());
}
