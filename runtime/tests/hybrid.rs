//! Hybrid search with a real embedding provider over HTTP: meaning and exact matches, per-arm explanations,
//! documents without vectors, a provider that is down, and the vector arm under a tenant filter; and every
//! tool's answer against the output schema it declares.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use paddock_runtime::{app::Settings, embed::Embedder, indexer};
use paddock_testkit::{
    embedding::{STAND_IN_MODEL, embed_text, embedding_server, openai_embedder},
    prelude::*,
};
use serde_json::{Value, json};
use sqlx::PgPool;

fn vector_literal(v: &[f32]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Inserts `n` documents `<tenant>-<i>` with texts from `text`, embedded by [`embed_text`], in one statement as
/// the owner (the fast path for volume; the tests of writes go through the tools).
async fn insert_embedded(admin: &PgPool, tenant: &str, n: usize, text: impl Fn(usize) -> String) {
    let ids: Vec<String> = (0..n).map(|i| format!("{tenant}-{i}")).collect();
    let texts: Vec<String> = (0..n).map(text).collect();
    let vecs: Vec<String> = texts
        .iter()
        .map(|t| vector_literal(&embed_text(t)))
        .collect();
    sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash, embedding, embedding_model) \
         SELECT $1, i, t, 'h', v::vector, $5 FROM unnest($2::text[], $3::text[], $4::text[]) AS x(i, t, v)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&texts)
    .bind(&vecs)
    .bind(STAND_IN_MODEL)
    .execute(admin)
    .await
    .unwrap();
}

/// A runtime whose embedder is the stand-in embedding server, and that embedder (to index documents with).
async fn embedding_app(admin: &PgPool, keys: &Keys) -> (TestApp, Embedder) {
    let addr = embedding_server().await;
    let embedder = openai_embedder(format!("http://{addr}/v1"), 2000);
    let app = app_with(
        runtime_pool(admin).await,
        keys,
        embedder.clone(),
        Settings::default(),
    )
    .await;
    (app, embedder)
}

#[sqlx::test(migrations = "../migrations")]
async fn hybrid_finds_by_meaning_and_by_exact_terms_and_explains_each_hit(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let (app, embedder) = embedding_app(&admin, &keys).await;
    let s = app.session(&keys.token("acme", RW)).await;
    s.upsert(
        "art17",
        "GDPR Article 17",
        "Data subjects may demand erasure of personal data.",
    )
    .await;
    s.upsert(
        "art15",
        "GDPR Article 15",
        "Data subjects may access personal data held about them.",
    )
    .await;
    s.upsert(
        "sla",
        "Service levels",
        "Availability of 99.9 percent each month.",
    )
    .await;

    // Writes did not wait for the model: nothing is embedded yet, and search still finds documents lexically.
    let r = s
        .call_ok("hybrid_search", json!({"query": "Article 17"}))
        .await;
    assert_eq!(r["hits"][0]["id"], "art17");
    assert!(r["hits"][0]["vector"].is_null());

    let stored = indexer::pass(&app.state.db, &embedder, embedder.model().unwrap())
        .await
        .unwrap();
    assert_eq!(stored, 3);

    // "forgotten" shares no lexeme with the documents: only the vector arm can find Article 17.
    let r = s
        .call_ok("hybrid_search", json!({"query": "right to be forgotten"}))
        .await;
    assert_eq!(r["mode"], "hybrid");
    assert_eq!(r["degraded"], false);
    let top = &r["hits"][0];
    assert_eq!(top["id"], "art17", "{r}");
    assert!(top["lexical"].is_null());
    assert_eq!(top["vector"]["rank"], 1);

    // An exact identifier ranks first in the lexical arm and overall.
    let r = s
        .call_ok("hybrid_search", json!({"query": "GDPR Article 15"}))
        .await;
    assert_eq!(r["hits"][0]["id"], "art15");
    assert_eq!(r["hits"][0]["lexical"]["rank"], 1);
    let scores: Vec<f64> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "hits are ordered by fused score: {scores:?}"
    );

    // Weights switch arms off; metadata filters apply to both arms.
    let r = s
        .call_ok(
            "hybrid_search",
            json!({"query": "right to be forgotten", "weights": {"vector": 0}}),
        )
        .await;
    assert!(
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["vector"].is_null())
    );
    s.call_ok("upsert_document", json!({"id": "ccpa", "title": "CCPA deletion", "content": "Consumers may request deletion.", "metadata": {"source": "ccpa"}})).await;
    indexer::pass(&app.state.db, &embedder, embedder.model().unwrap())
        .await
        .unwrap();
    let r = s
        .call_ok(
            "hybrid_search",
            json!({"query": "forgotten deletion", "filter": {"source": "ccpa"}}),
        )
        .await;
    let ids: Vec<&str> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ccpa"]);

    // A changed document loses its vector until re-embedded, so an old vector never describes new text.
    s.upsert(
        "art17",
        "GDPR Article 17",
        "Completely different text about invoices.",
    )
    .await;
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM documents WHERE id = 'art17' AND embedding IS NULL",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(pending, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn provider_down_degrades_to_lexical_within_the_timeout(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let embedder = openai_embedder(format!("http://{closed}/v1"), 500);
    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        embedder,
        Settings::default(),
    )
    .await;
    let s = app.session(&keys.token("acme", RW)).await;
    s.upsert(
        "doc",
        "Termination",
        "Either party may terminate with ninety days notice.",
    )
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = s
            .call_ok("hybrid_search", json!({"query": "terminate notice"}))
            .await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r["degraded"], true);
        assert_eq!(r["mode"], "lexical");
        assert!(r["degradedReason"].as_str().unwrap().contains("lexically"));
        assert_eq!(r["hits"][0]["id"], "doc");
    }
    // The tenant dashboard counts them; the first failure is the provider's, the rest the breaker's or its.
    let text = app.metrics().await;
    let degraded: f64 = text
        .lines()
        .filter(|l| l.starts_with("paddock_search_degraded_total{tenant=\"acme\","))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(degraded, 3.0, "{text}");
}

/// The output schema of each tool, as `tools/list` gives it to a client, ready to validate (formats included).
async fn output_validators(s: &Session<'_>) -> HashMap<String, jsonschema::Validator> {
    let mut validators = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let r = s.request("tools/list", params).await;
        for t in r["result"]["tools"].as_array().unwrap() {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&t["outputSchema"])
                .unwrap();
            validators.insert(t["name"].as_str().unwrap().to_owned(), validator);
        }
        match r["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    validators
}

/// What each tool answers over MCP is what its `outputSchema` declares, as a client that validates
/// `structuredContent` checks it: fused hits with an arm that did not rank them, lexical and degraded searches,
/// documents, both kinds of page, writes and the usage report with its ledger.
#[sqlx::test(migrations = "../migrations")]
async fn every_tool_answers_what_its_output_schema_declares(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let (app, embedder) = embedding_app(&admin, &keys).await;
    let all_scopes = ["documents:read", "documents:write", "usage:read"];
    let s = app
        .session(&keys.token_for("acme", "carol", &all_scopes))
        .await;
    let validators = output_validators(&s).await;
    assert_eq!(validators.len(), 7);
    let check = |tool: &str, r: &Value| {
        let errors: Vec<String> = validators[tool]
            .iter_errors(r)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{tool}: {errors:?} in {r}");
    };

    let docs = [
        (
            "art17",
            "GDPR Article 17",
            "Data subjects may demand erasure of personal data.",
        ),
        (
            "art15",
            "GDPR Article 15",
            "Data subjects may access personal data held about them.",
        ),
        (
            "sla",
            "Service levels",
            "Availability of 99.9 percent each month.",
        ),
    ];
    for (id, title, content) in docs {
        let r = s.upsert(id, title, content).await;
        assert_eq!(r["outcome"], "created");
        check("upsert_document", &r);
    }
    let (id, title, content) = docs[0];
    let r = s.upsert(id, title, content).await;
    assert_eq!(r["outcome"], "unchanged");
    check("upsert_document", &r);
    indexer::pass(&app.state.db, &embedder, embedder.model().unwrap())
        .await
        .unwrap();

    let r = s
        .call_ok("hybrid_search", json!({"query": "right to be forgotten"}))
        .await;
    assert_eq!(
        (r["mode"].as_str(), r["degraded"].as_bool()),
        (Some("hybrid"), Some(false))
    );
    assert!(
        r["hits"][0]["lexical"].is_null() && r["hits"][0]["vector"].is_object(),
        "{r}"
    );
    check("hybrid_search", &r);
    let r = s.call_ok("search", json!({"query": "GDPR article"})).await;
    assert!(r["hits"][0]["vector"].is_null(), "{r}");
    check("search", &r);

    let r = s.call_ok("get_document", json!({"id": "art17"})).await;
    assert_eq!(r["embedded"], true);
    check("get_document", &r);
    let first = s.call_ok("list_documents", json!({"limit": 2})).await;
    assert!(first["nextCursor"].is_string(), "{first}");
    check("list_documents", &first);
    let last = s
        .call_ok(
            "list_documents",
            json!({"limit": 2, "cursor": first["nextCursor"]}),
        )
        .await;
    assert!(last.get("nextCursor").is_none(), "{last}");
    check("list_documents", &last);
    let r = s.call_ok("delete_document", json!({"id": "sla"})).await;
    check("delete_document", &r);

    sqlx::query(
        "INSERT INTO usage_ledger (tenant_id, user_id, model, input_tokens, output_tokens, cost) \
         VALUES ('acme', 'carol', 'm1', 1000, 100, 0.25)",
    )
    .execute(&admin)
    .await
    .unwrap();
    let r = s.call_ok("usage", json!({})).await;
    assert_eq!(r["byModel"][0]["cost"], "0.25");
    check("usage", &r);
    let r = s.call_ok("usage", json!({"by": "model"})).await;
    assert_eq!(r["ledger"]["rows"][0]["key"], "m1");
    check("usage", &r);

    // A runtime whose provider is down answers lexically, and says why.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = app_with(
        runtime_pool(&admin).await,
        &keys,
        openai_embedder(format!("http://{closed}/v1"), 500),
        Settings::default(),
    )
    .await;
    let s = down.session(&keys.token("acme", RO)).await;
    let r = s.call_ok("hybrid_search", json!({"query": "GDPR"})).await;
    assert!(r["degradedReason"].is_string(), "{r}");
    check("hybrid_search", &r);
}

/// HNSW filters after its scan; with another tenant's much closer vectors crowding the index, the vector arm must
/// still return the requested number of this tenant's rows (pgvector's iterative scan).
#[sqlx::test(migrations = "../migrations")]
async fn vector_arm_returns_enough_rows_under_the_tenant_filter(admin: PgPool) {
    provision_tenant(&admin, "small", 6000, 1000).await;
    provision_tenant(&admin, "big", 6000, 1000).await;
    let keys = keys();
    let addr = embedding_server().await;
    let embedder = openai_embedder(format!("http://{addr}/v1"), 2000);
    let query = "river delta sediment";
    // The big tenant's documents are near-duplicates of the query; the small tenant's only share one word.
    insert_embedded(&admin, "big", 3000, |i| {
        format!("river delta sediment sample {i}")
    })
    .await;
    insert_embedded(&admin, "small", 40, |i| {
        format!("sediment core number {i} from a lake")
    })
    .await;
    sqlx::query("ANALYZE documents")
        .execute(&admin)
        .await
        .unwrap();

    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        embedder,
        Settings::default(),
    )
    .await;
    let s = app.session(&keys.token("small", RO)).await;
    let r = s
        .call_ok(
            "hybrid_search",
            json!({"query": query, "limit": 30, "weights": {"lexical": 0}}),
        )
        .await;
    let hits = r["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 30, "{r}");
    assert!(
        hits.iter().all(
            |h| h["id"].as_str().unwrap().starts_with("small-") && h["vector"]["rank"].is_i64()
        )
    );
}

/// Every tenant transaction searches HNSW indexes iteratively, with the default candidate list or the one a
/// search names, plans as the server would unless the search asks for its generic plan, and the settings end
/// with the transaction.
#[sqlx::test(migrations = "../migrations")]
async fn tenant_transactions_carry_the_settings_of_their_search(admin: PgPool) {
    use paddock_runtime::db::{DEFAULT_HNSW_EF_SEARCH, Db, SearchScan, TenantId};
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let acme = TenantId::parse("acme").unwrap();
    // One connection, so the check after the transactions runs on the connection they used.
    let pool = login_pool_of(&admin, "paddock_runtime", 1).await;
    let db = Db::from_pool(pool.clone());
    let settings = "SELECT current_setting('hnsw.ef_search', true), current_setting('hnsw.iterative_scan', true), \
                    current_setting('plan_cache_mode')";
    let named = SearchScan {
        ef_search: 17,
        generic_plan: true,
    };
    // A read-only search ends without waiting for the server (`end_read`): its ROLLBACK still reaches the
    // server before the connection serves anyone else.
    for (scan, read_only) in [(None, false), (Some(named), false), (Some(named), true)] {
        let mut tx = match scan {
            None => db.begin(&acme).await.unwrap(),
            Some(scan) => db.begin_search(&acme, scan).await.unwrap(),
        };
        let (ef, plan) = match scan {
            None => (DEFAULT_HNSW_EF_SEARCH, "auto"),
            Some(s) => (s.ef_search, "force_generic_plan"),
        };
        let (got, iterative, mode): (Option<String>, Option<String>, String) =
            sqlx::query_as(settings).fetch_one(tx.conn()).await.unwrap();
        assert_eq!(got.as_deref(), Some(ef.to_string().as_str()));
        assert_eq!(iterative.as_deref(), Some("relaxed_order"));
        assert_eq!(mode, plan);
        if read_only {
            tx.end_read();
        } else {
            tx.commit().await.unwrap();
        }
        let mut conn = pool.acquire().await.unwrap();
        let (got, _, mode): (Option<String>, Option<String>, String) = sqlx::query_as(settings)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        // Still inside the search's transaction, the settings would read as it set them.
        assert_ne!(got.as_deref(), Some("17"), "transaction-local");
        assert_eq!(mode, "auto", "transaction-local");
    }
}

/// Each tenant's documents and BM25 postings live in their own partitions (migrations 0004, 0006), with their own
/// indexes; the hybrid statement names the caller's (as the schema's naming functions do) and its plan reads
/// nothing else; and a partition named directly shows what its parent would (0007): the current tenant's rows,
/// read-only.
#[sqlx::test(migrations = "../migrations")]
async fn the_search_plan_touches_only_the_tenants_partition(admin: PgPool) {
    use paddock_runtime::{
        db::{Db, TenantId},
        search::{self, Bm25, Fusion, HybridParams},
    };
    for t in ["acme", "globex", "initech"] {
        provision_tenant(&admin, t, 6000, 1000).await;
    }
    let documents = "paddock_documents_partition";
    let (acme, globex) = (
        partition_name(&admin, documents, "acme").await,
        partition_name(&admin, documents, "globex").await,
    );
    let postings = "paddock_postings_partition";
    let (acme_postings, globex_postings) = (
        partition_name(&admin, postings, "acme").await,
        partition_name(&admin, postings, "globex").await,
    );
    let parents: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, p.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'documents' ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(parents.len(), 3, "one partition per tenant: {parents:?}");
    let acme_id = TenantId::parse("acme").unwrap();
    assert_eq!(acme_id.partition("documents"), acme);
    assert_eq!(acme_id.partition("bm25_postings"), acme_postings);
    insert_embedded(&admin, "acme", 2000, |i| {
        format!(
            "acme field report {i} on river sediment and rain {}",
            i % 37
        )
    })
    .await;
    insert_embedded(&admin, "globex", 2000, |i| {
        format!(
            "globex field report {i} on river sediment and rain {}",
            i % 37
        )
    })
    .await;
    sqlx::query("ANALYZE documents")
        .execute(&admin)
        .await
        .unwrap();

    let db = Db::from_pool(runtime_pool(&admin).await);
    let mut tx = db.begin(&acme_id).await.unwrap();
    let p = HybridParams {
        query: "river sediment",
        vector: Some(embed_text("river sediment")),
        model: Some(STAND_IN_MODEL),
        limit: 10,
        filter: None,
        lexical_weight: 1.0,
        vector_weight: 1.0,
        rrf_k: 60.0,
        depth: 100,
        fusion: Fusion::Rrf,
        alpha: 0.5,
        bm25: Bm25::default(),
    };
    let sql = format!("EXPLAIN (FORMAT JSON) {}", search::hybrid_sql(&acme_id));
    let mut q = sqlx::query_scalar::<_, Value>(&sql);
    for (ty, value) in p.text_binds() {
        q = match (ty, value) {
            ("vector", v) => q.bind(v.map(|_| pgvector::Vector::from(p.vector.clone().unwrap()))),
            ("jsonb", v) => q.bind(v.map(|s| serde_json::from_str::<Value>(&s).unwrap())),
            ("int8", v) => q.bind(v.map(|s| s.parse::<i64>().unwrap())),
            ("float8", v) => q.bind(v.map(|s| s.parse::<f64>().unwrap())),
            (_, v) => q.bind(v),
        };
    }
    let plan = q
        .bind("acme")
        .fetch_one(tx.conn())
        .await
        .unwrap()
        .to_string();
    tx.commit().await.unwrap();
    // Named directly, a partition is policed like its parent: acme sees its own rows and none of globex's, and
    // writes only through the parents, whose policies and triggers keep documents and postings in step.
    let count = |table: &str| format!("SELECT count(*) FROM {table}");
    let mut tx = db.begin(&acme_id).await.unwrap();
    for (table, visible) in [(&acme, 2000), (&globex, 0), (&globex_postings, 0)] {
        let n: i64 = sqlx::query_scalar(&count(table))
            .fetch_one(tx.conn())
            .await
            .unwrap();
        assert_eq!(n, visible, "{table}");
    }
    tx.commit().await.unwrap();
    for write in [
        format!("UPDATE {acme} SET content = 'x'"),
        format!("DELETE FROM {acme_postings}"),
        format!(
            "INSERT INTO {acme} (tenant_id, id, content, content_hash) VALUES ('acme', 'x', 'x', 'h')"
        ),
    ] {
        let mut tx = db.begin(&acme_id).await.unwrap();
        let err = sqlx::query(&write).execute(tx.conn()).await.unwrap_err();
        assert_permission_denied(&err);
    }
    // Without a tenant context a partition shows nothing, as its parent does.
    let n: i64 = sqlx::query_scalar(&count(&acme))
        .fetch_one(&runtime_pool(&admin).await)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(
        plan.contains(&format!("\"Relation Name\":\"{acme}\"")),
        "acme's partition is scanned: {plan}"
    );
    assert!(
        !plan.contains(&globex),
        "globex's partition is pruned: {plan}"
    );
    assert!(
        plan.contains(&format!("\"Relation Name\":\"{acme_postings}\"")),
        "acme's postings are read: {plan}"
    );
    assert!(
        !plan.contains(&globex_postings),
        "globex's postings are pruned: {plan}"
    );
    // Which index each arm picks at this size is the planner's cost call (a sequential scan of 2,000 rows is
    // cheapest here); at benchmark size they are the partition's HNSW and postings indexes (BENCHMARKS.md). What
    // this pins is that the partition has its own.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
    )
    .bind(&acme)
    .fetch_all(&admin)
    .await
    .unwrap();
    for (method, column) in [
        ("hnsw", "embedding vector_cosine_ops"),
        ("gin", "tsv"),
        ("gin", "metadata jsonb_path_ops"),
    ] {
        assert!(
            indexes
                .iter()
                .any(|i| i.contains(&format!("USING {method} ({column})"))),
            "{method} on {column}: {indexes:?}"
        );
    }
}

/// A search without a metadata filter runs its tenant's prepared statement with the generic plan, planned once
/// per connection, and answers exactly as a plan made for its values does; with a filter it is planned per call.
#[sqlx::test(migrations = "../migrations")]
async fn unfiltered_searches_reuse_one_generic_plan_per_tenant(admin: PgPool) {
    use paddock_runtime::{
        db::{Db, SearchScan, TenantId},
        search::{self, HybridParams},
        tools::SearchSettings,
    };
    provision_tenant(&admin, "acme", 6000, 1000).await;
    insert_embedded(&admin, "acme", 300, |i| {
        format!("acme note {i} on river sediment, rain and {}", i % 11)
    })
    .await;
    sqlx::query("UPDATE documents SET metadata = jsonb_build_object('odd', right(id, 1) IN ('1', '3', '5', '7', '9'))")
        .execute(&admin)
        .await
        .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    // One connection, so every search uses the same prepared statement.
    let db = Db::from_pool(login_pool_of(&admin, "paddock_runtime", 1).await);
    let settings = SearchSettings::default();
    let search = |filter: Option<Value>, generic: Option<bool>| {
        let (db, settings, acme) = (db.clone(), settings.clone(), acme.clone());
        async move {
            let p = HybridParams {
                query: "river sediment rain",
                vector: Some(embed_text("river sediment rain")),
                model: Some(STAND_IN_MODEL),
                limit: 10,
                filter: filter.as_ref(),
                lexical_weight: 1.0,
                vector_weight: 1.0,
                rrf_k: settings.rrf_k,
                depth: settings.depth,
                fusion: settings.fusion,
                alpha: settings.alpha,
                bm25: settings.bm25,
            };
            let mut scan = settings.scan(&p);
            assert_eq!(scan.generic_plan, filter.is_none());
            if let Some(generic) = generic {
                scan = SearchScan {
                    generic_plan: generic,
                    ..scan
                };
            }
            let mut tx = db.begin_search(&acme, scan).await.unwrap();
            let hits = search::hybrid(&mut tx, &p).await.unwrap();
            let (generic, custom): (i64, i64) = sqlx::query_as(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            )
            .bind(search::hybrid_sql(&acme))
            .fetch_one(tx.conn())
            .await
            .unwrap();
            tx.commit().await.unwrap();
            (hits, generic, custom)
        }
    };
    // Planned for its values first (as the server's default does for a statement's first calls).
    let (planned, generic, custom) = search(None, Some(false)).await;
    assert_eq!((generic, custom), (0, 1));
    assert_eq!(planned.len(), 10);
    let (reused, generic, custom) = search(None, None).await;
    assert_eq!((generic, custom), (1, 1));
    assert_eq!(reused, planned, "the generic plan ranks as the custom one");
    let (_, generic, custom) = search(None, None).await;
    assert_eq!((generic, custom), (2, 1), "planned once, executed again");
    let (filtered, generic, custom) = search(Some(json!({ "odd": true })), None).await;
    assert_eq!(
        (generic, custom),
        (2, 2),
        "a filter is planned for its values"
    );
    assert!(!filtered.is_empty());
    assert!(
        filtered.iter().all(|h| h.metadata["odd"] == json!(true)),
        "{filtered:?}"
    );
}
