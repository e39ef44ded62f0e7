//! The benchmark command end to end on a tiny data set: COPY load with index rebuild, the in-process embedding
//! server and runtime, MCP sessions over HTTP, and pgbench replaying `search::hybrid_sql`. It pins that the
//! benchmark keeps working as the search SQL changes (a parameter added to the statement but not to
//! `HybridParams::text_binds` fails here), not its numbers.

use std::{path::PathBuf, time::Duration};

use paddock_runtime::bench::{self, BenchOptions};
use sqlx::PgPool;

fn admin_url(db: &str) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut url = reqwest::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(db);
    url.to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn bench_loads_drives_the_runtime_and_replays_the_same_sql_under_pgbench(admin: PgPool) {
    let pg_bin = std::env::var("PADDOCK_PG_BIN")
        .expect("PADDOCK_PG_BIN must name the PostgreSQL bin dir (eval \"$(scripts/postgres.sh start)\" sets it)");
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&admin).await.unwrap();
    let opts = BenchOptions {
        database_url: admin_url(&db),
        runtime_database_url: None,
        tenants: 2,
        docs_per_tenant: 150,
        queries: 4,
        concurrency: vec![1, 2],
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        seed: 7,
        pg_bin: PathBuf::from(pg_bin),
        pool_size: 4,
        reload: false,
        lexical_weight: 1.0,
        vector_weight: 1.0,
    };
    let report = bench::run(opts.clone()).await.expect("the benchmark runs");
    assert_eq!(report.documents, 300);
    assert!(report.loaded.is_some());
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert!(row.requests > 0 && row.req_per_sec > 0.0, "{row:?}");
        assert_eq!((row.errors, row.degraded), (0, 0), "{row:?}");
        assert!(row.p50_ms <= row.p95_ms && row.p95_ms <= row.p99_ms, "{row:?}");
        assert!(row.pgbench_tps > 0.0, "{row:?}");
    }
    assert!(report.overhead.verify_us > 0.0);
    assert!(report.table().contains("| 2 |"));

    // A second run finds the same data set and does not load it again; with the vector arm off, neither the
    // runtime nor pgbench embeds or binds a query vector.
    let again = bench::run(BenchOptions { concurrency: vec![1], vector_weight: 0.0, ..opts })
        .await
        .expect("the benchmark runs again");
    assert!(again.loaded.is_none());
    assert_eq!(again.documents, 300);
    assert_eq!((again.rows[0].errors, again.rows[0].degraded), (0, 0), "{:?}", again.rows[0]);
    assert!(again.rows[0].pgbench_tps > 0.0);
}
