//! Migrations applied to a database that already holds data: partitioning `documents` by tenant (0004) moves
//! every row with its text analysis, embedding and BM25 statistics intact, the BM25 postings (0006) are written
//! for the documents already there, the partitions already there are policed for the search to name (0007), the
//! document frequencies (0018) are counted from the postings already there, and the runtime's paths work on the
//! result.

use std::borrow::Cow;

use paddock_runtime::{
    db::{Db, MIGRATOR, TenantId},
    documents,
    search::{self, Bm25},
    tools::SearchSettings,
};
use paddock_testkit::prelude::*;
use serde_json::json;
use sqlx::{PgPool, migrate::Migrator};

async fn migrate_up_to(admin: &PgPool, version: i64) {
    let migrations: Vec<_> = MIGRATOR
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect();
    let partial = Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    partial
        .run(admin)
        .await
        .expect("the earlier migrations apply");
}

#[sqlx::test(migrations = false)]
async fn partitioning_documents_keeps_every_row_and_its_statistics(admin: PgPool) {
    migrate_up_to(&admin, 3).await;
    for t in ["acme", "globex"] {
        provision_tenant(&admin, t, 6000, 1000).await;
    }
    let v = format!(
        "[{}]",
        (0..384)
            .map(|i| if i == 3 { "1" } else { "0" })
            .collect::<Vec<_>>()
            .join(",")
    );
    for (tenant, n) in [("acme", 30), ("globex", 12)] {
        sqlx::query(
            "INSERT INTO documents (tenant_id, id, title, content, content_hash, embedding, embedding_model) \
             SELECT $1, 'd' || i, 'Report ' || i, 'river sediment sample number ' || i, 'h', $3::vector, 'm' \
             FROM generate_series(1, $2) AS i",
        )
        .bind(tenant)
        .bind(n)
        .bind(&v)
        .execute(&admin)
        .await
        .unwrap();
    }
    let snapshot = "SELECT tenant_id, id, title, content, tsv::text, bm25_length, embedding::text, embedding_model, \
                           created_at::text FROM documents ORDER BY 1, 2";
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i32,
        Option<String>,
        Option<String>,
        String,
    );
    let before: Vec<Row> = sqlx::query_as(snapshot).fetch_all(&admin).await.unwrap();
    let stats = "SELECT tenant_id, sum(documents)::bigint, sum(tokens)::bigint FROM bm25_stats GROUP BY 1 ORDER BY 1";
    let stats_before: Vec<(String, i64, i64)> =
        sqlx::query_as(stats).fetch_all(&admin).await.unwrap();

    MIGRATOR
        .run(&admin)
        .await
        .expect("0004 applies to a populated database");

    let after: Vec<Row> = sqlx::query_as(snapshot).fetch_all(&admin).await.unwrap();
    assert_eq!(after.len(), 42);
    assert_eq!(before, after, "every row moved unchanged");
    let stats_after: Vec<(String, i64, i64)> =
        sqlx::query_as(stats).fetch_all(&admin).await.unwrap();
    assert_eq!(
        stats_before, stats_after,
        "the copy did not count the rows twice"
    );
    let kind: String =
        sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE relname = 'documents'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(kind, "p", "documents is partitioned");
    let in_acme: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}",
        partition_name(&admin, "paddock_documents_partition", "acme").await
    ))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(in_acme, 30);

    // The runtime's role reads, writes and counts through the new table, still only its own tenant's rows.
    let db = Db::from_pool(runtime_pool(&admin).await);
    let mut tx = db.begin(&TenantId::parse("globex").unwrap()).await.unwrap();
    assert!(
        documents::get(&mut tx, "d20").await.unwrap().is_none(),
        "acme's d20 is not visible to globex"
    );
    let created = documents::upsert(&mut tx, "d13", "New", "fresh sediment", &json!({}))
        .await
        .unwrap();
    let updated = documents::upsert(&mut tx, "d1", "Report 1", "changed text", &json!({}))
        .await
        .unwrap();
    assert_eq!(
        (created, updated),
        (
            documents::UpsertOutcome::Created,
            documents::UpsertOutcome::Updated
        )
    );
    tx.commit().await.unwrap();
    // The search names globex's partitions, which predate 0007, and finds its own documents only.
    let p = search::lexical_params("sediment", 50, None, Bm25::default());
    let globex_id = TenantId::parse("globex").unwrap();
    let mut tx = db
        .begin_search(&globex_id, SearchSettings::default().scan(&p))
        .await
        .unwrap();
    let mut found: Vec<String> = search::lexical(&mut tx, &p)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    tx.commit().await.unwrap();
    found.sort();
    let mut want: Vec<String> = (2..=13).map(|i| format!("d{i}")).collect();
    want.sort();
    assert_eq!(
        found, want,
        "globex's sediment documents, d1 rewritten without it"
    );
    let globex: (i64, i64) = sqlx::query_as("SELECT sum(documents)::bigint, sum(tokens)::bigint FROM bm25_stats WHERE tenant_id = 'globex'")
        .fetch_one(&admin)
        .await
        .unwrap();
    let recount: (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(bm25_length)::bigint FROM documents WHERE tenant_id = 'globex'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(globex, recount, "statistics follow writes after the move");
    assert_eq!(
        postings_out_of_step(&admin).await,
        0,
        "0006 wrote the existing documents' postings, writes keep them"
    );
}

/// 0018: the document frequencies of the documents already there are counted from their postings, into a
/// policed partition per tenant, and writes after it keep them exact.
#[sqlx::test(migrations = false)]
async fn document_frequencies_start_from_the_postings_already_there(admin: PgPool) {
    migrate_up_to(&admin, 17).await;
    for t in ["acme", "globex"] {
        provision_tenant(&admin, t, 6000, 1000).await;
    }
    sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash) \
         SELECT t, 'd' || i, 'river sediment sample ' || (i % 7) || ' of ' || t, 'h' \
         FROM unnest(ARRAY['acme', 'globex']) AS t, generate_series(1, 40) AS i",
    )
    .execute(&admin)
    .await
    .unwrap();
    MIGRATOR.run(&admin).await.expect("0018 applies");
    assert_eq!(
        frequencies_out_of_step(&admin).await,
        0,
        "the migration counted every term"
    );
    let river: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tenant_id, sum(docs)::int8 FROM bm25_terms WHERE term = 'river' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(river, [("acme".to_owned(), 40), ("globex".to_owned(), 40)]);
    let policed: Vec<bool> = sqlx::query_scalar(
        "SELECT c.relrowsecurity AND c.relforcerowsecurity FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'bm25_terms'::regclass",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(policed, [true, true]);

    let db = Db::from_pool(runtime_pool(&admin).await);
    let acme = TenantId::parse("acme").unwrap();
    let mut tx = db.begin(&acme).await.unwrap();
    documents::delete(&mut tx, "d1").await.unwrap();
    documents::upsert(&mut tx, "d2", "", "estuary sediment", &json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        frequencies_out_of_step(&admin).await,
        0,
        "writes after the migration"
    );
    let mut tx = db.begin(&acme).await.unwrap();
    let hits = search::lexical(
        &mut tx,
        &search::lexical_params("estuary river", 5, None, Bm25::default()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(hits.first().map(|h| h.id.as_str()), Some("d2"));
}

/// Tenants provisioned at the same time each get their partition, without deadlocking on one another (each
/// transaction holds its tenants row while attaching its partition), and deleting a tenant drops it.
#[sqlx::test(migrations = "../migrations")]
async fn concurrent_tenants_get_their_partitions_and_lose_them_on_delete(admin: PgPool) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut tx = admin.begin().await.unwrap();
                sqlx::query("INSERT INTO tenants (id) VALUES ($1)").bind(format!("t{i}")).execute(&mut *tx).await?;
                // Hold the transaction open across the others' inserts, as the operator's provisioning does.
                sqlx::query("SELECT pg_sleep(0.1)").execute(&mut *tx).await?;
                sqlx::query("INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ($1, 'd', 'text', 'h')")
                    .bind(format!("t{i}"))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("no deadlock, no failure");
    }
    for parent in ["documents", "bm25_postings", "bm25_terms"] {
        let partitions: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass")
                .bind(parent)
                .fetch_one(&admin)
                .await
                .unwrap();
        assert_eq!(partitions, 8, "{parent}");
    }

    sqlx::query("DELETE FROM tenants WHERE id = 't3'")
        .execute(&admin)
        .await
        .unwrap();
    for partition in [
        "paddock_documents_partition",
        "paddock_postings_partition",
        "paddock_terms_partition",
    ] {
        let gone: Option<String> = sqlx::query_scalar(&format!(
            "SELECT to_regclass({partition}('t3')::text)::text"
        ))
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(gone, None, "{partition}");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 7);
    // A document for a tenant that does not exist has no partition to go to.
    let err = sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ('t3', 'd', 'x', 'h')",
    )
    .execute(&admin)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23514"),
        "{err}"
    );
}

/// 0010: embeddings are stored uncompressed, in the partitions already there and in those created later. The
/// document is large enough that PostgreSQL compresses a column to fit the row, and its vector is mostly zeros,
/// so under the earlier STORAGE MAIN the vector was what got compressed (checked first, so the test can fail).
#[sqlx::test(migrations = false)]
async fn embeddings_are_stored_uncompressed_in_every_partition(admin: PgPool) {
    migrate_up_to(&admin, 9).await;
    provision_tenant(&admin, "acme", 6000, 1000).await;
    // 300 distinct words: the text analysis alone takes over 2 kB, which makes the row too large for a page's
    // quarter and sets the compression going.
    let content: String = (0..300).map(|i| format!("w{i}x ")).collect();
    let sparse = format!("[1{}]", ",0".repeat(383));
    let store = |tenant: &'static str, id: &'static str| {
        let (admin, content, sparse) = (admin.clone(), content.clone(), sparse.clone());
        async move {
            sqlx::query(
                "INSERT INTO documents (tenant_id, id, content, content_hash, embedding, embedding_model) \
                 VALUES ($1, $2, $3, 'h', $4::vector, 'm')",
            )
            .bind(tenant)
            .bind(id)
            .bind(&content)
            .bind(&sparse)
            .execute(&admin)
            .await
            .unwrap();
        }
    };
    let compression = |tenant: &'static str, id: &'static str| {
        let admin = admin.clone();
        async move {
            let (method, size): (Option<String>, i32) = sqlx::query_as(
                "SELECT pg_column_compression(embedding), pg_column_size(embedding) FROM documents \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_one(&admin)
            .await
            .unwrap();
            (method, size)
        }
    };
    store("acme", "before").await;
    let (method, size) = compression("acme", "before").await;
    assert!(
        method.is_some() && size < 1544,
        "under STORAGE MAIN the sparse vector is compressed: {method:?}, {size} bytes"
    );

    MIGRATOR.run(&admin).await.expect("0010 applies");
    provision_tenant(&admin, "globex", 6000, 1000).await;
    for (tenant, id) in [("acme", "after"), ("globex", "after")] {
        store(tenant, id).await;
        assert_eq!(
            compression(tenant, id).await,
            (None, 1544),
            "{tenant}: the vector is in the row as it is"
        );
    }
    // What was compressed stays so until the embedding is written again.
    assert!(compression("acme", "before").await.0.is_some());
    sqlx::query("UPDATE documents SET embedding = $1::vector WHERE id = 'before'")
        .bind(&sparse)
        .execute(&admin)
        .await
        .unwrap();
    assert_eq!(compression("acme", "before").await, (None, 1544));
}

/// Before 0012 a tenant login was a member of paddock_tenant that could switch to it, and after `SET ROLE
/// paddock_tenant` the tenant came from the session's own setting: its credentials read every tenant. The
/// migration repairs roles that already exist: the same role, unchanged, can neither switch nor leave its tenant.
#[sqlx::test(migrations = false)]
async fn tenant_logins_made_before_0012_are_pinned_by_it(admin: PgPool) {
    migrate_up_to(&admin, 11).await;
    for t in ["acme", "globex"] {
        provision_tenant(&admin, t, 6000, 1000).await;
    }
    sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ('globex', 'secret', 'merger plans', 'h')",
    )
    .execute(&admin)
    .await
    .unwrap();
    let role = format!("old_login_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE ROLE {role} LOGIN IN ROLE paddock_tenant"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tenant_roles (role_name, tenant_id) VALUES ($1, 'acme')")
        .bind(&role)
        .execute(&admin)
        .await
        .unwrap();
    let escape = |pool: PgPool| async move {
        let mut conn = pool.acquire().await.unwrap();
        let switched = sqlx::query("SET ROLE paddock_tenant")
            .execute(&mut *conn)
            .await;
        sqlx::query("SELECT set_config('paddock.tenant_id', 'globex', false)")
            .execute(&mut *conn)
            .await
            .unwrap();
        let seen: i64 =
            sqlx::query_scalar("SELECT count(*) FROM documents WHERE tenant_id = 'globex'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        drop(conn);
        pool.close().await;
        (switched.is_ok(), seen)
    };

    // The hole, as it was.
    assert_eq!(escape(login_pool(&admin, &role).await).await, (true, 1));

    MIGRATOR.run(&admin).await.unwrap();
    let (switched, seen) = escape(login_pool(&admin, &role).await).await;
    assert!(!switched, "SET ROLE paddock_tenant is refused");
    assert_eq!(seen, 0, "globex's rows stay out of reach");
    let set_option: bool = sqlx::query_scalar(
        "SELECT bool_or(set_option) FROM pg_auth_members WHERE member = $1::regrole",
    )
    .bind(&role)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(!set_option);

    sqlx::query("DELETE FROM tenant_roles WHERE role_name = $1")
        .bind(&role)
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&admin)
        .await
        .unwrap();
}
