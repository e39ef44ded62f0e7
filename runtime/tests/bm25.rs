//! The BM25 lexical arm: scores against a hand computation, corpus statistics that stay exact under concurrent
//! writers, and statistics that are tenant-isolated and written only by the database itself; then the fusion of
//! its ranking with the vector arm's, both ways, recomputed from the per-arm ranks and scores each hit reports.

use std::collections::HashMap;

use paddock_runtime::{
    app::Settings,
    db::{Db, TenantId},
    documents,
    embed::Embedder,
    search::{self, Bm25, Fusion, HybridParams},
    tools::SearchSettings,
};
use paddock_testkit::prelude::*;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Lucene's BM25 for one term: `ln(1 + (N - df + 0.5)/(df + 0.5)) · tf·(k1+1) / (tf + k1·(1 - b + b·dl/avgdl))`.
fn bm25_term(n: f64, df: f64, tf: f64, dl: f64, avgdl: f64, k1: f64, b: f64) -> f64 {
    let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
    idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl))
}

fn scores(r: &Value) -> HashMap<String, f64> {
    r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_owned(),
                h["lexical"]["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-6,
        "{what}: SQL {got} vs hand {want}"
    );
}

/// The corpus, analysed by hand (english stemming, stop words dropped; the title counts like the content):
///   a  "Solar panels" + "solar power from solar panels"   solar 3, panel 2, power 1          |a| = 6
///   b  "" + "wind power and wind turbines"                 wind 2, power 1, turbin 1          |b| = 4
///   c  "Grid" + "the power grid stores solar energy"       grid 2, power 1, store 1, solar 1, energi 1  |c| = 6
///   d  "" + "hydro dams"                                   hydro 1, dam 1                     |d| = 2
/// N = 4, avgdl = 18 / 4 = 4.5; df(solar) = 2, df(power) = 3, df(wind) = 1, df(turbin) = 1.
async fn load_hand_corpus(s: &Session<'_>) {
    s.upsert("a", "Solar panels", "solar power from solar panels")
        .await;
    s.upsert("b", "", "wind power and wind turbines").await;
    s.upsert("c", "Grid", "the power grid stores solar energy")
        .await;
    s.upsert("d", "", "hydro dams").await;
}

#[sqlx::test(migrations = "../migrations")]
async fn scores_match_bm25_computed_by_hand(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let s = app.session(&keys.token("acme", RW)).await;
    load_hand_corpus(&s).await;

    // The stored lengths are the hand counts.
    let lengths: Vec<(String, i32)> =
        sqlx::query_as("SELECT id, bm25_length FROM documents ORDER BY id")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(
        lengths,
        [
            ("a".into(), 6),
            ("b".into(), 4),
            ("c".into(), 6),
            ("d".into(), 2)
        ]
    );

    let (n, avgdl, k1, b) = (4.0, 4.5, 1.2, 0.75);
    let r = s.call_ok("search", json!({"query": "solar power"})).await;
    let got = scores(&r);
    assert_eq!(got.len(), 3, "d holds neither term: {r}");
    let want_a =
        bm25_term(n, 2.0, 3.0, 6.0, avgdl, k1, b) + bm25_term(n, 3.0, 1.0, 6.0, avgdl, k1, b);
    let want_b = bm25_term(n, 3.0, 1.0, 4.0, avgdl, k1, b);
    let want_c =
        bm25_term(n, 2.0, 1.0, 6.0, avgdl, k1, b) + bm25_term(n, 3.0, 1.0, 6.0, avgdl, k1, b);
    assert_close(got["a"], want_a, "a");
    assert_close(got["b"], want_b, "b");
    assert_close(got["c"], want_c, "c");
    let ids: Vec<&str> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "c", "b"]);
    // The search tool reports the BM25 score itself; hybrid_search keeps it as the lexical arm's score.
    assert_close(r["hits"][0]["score"].as_f64().unwrap(), want_a, "score");
    let h = s
        .call_ok("hybrid_search", json!({"query": "solar power"}))
        .await;
    assert_close(
        h["hits"][0]["lexical"]["score"].as_f64().unwrap(),
        want_a,
        "hybrid lexical score",
    );
    assert_eq!(h["hits"][0]["lexical"]["rank"], 1);

    // A term repeated in the query counts as often as it appears (qtf); a rare term outweighs a common one.
    let r = s
        .call_ok("search", json!({"query": "wind, wind turbines"}))
        .await;
    let got = scores(&r);
    let want_b =
        2.0 * bm25_term(n, 1.0, 2.0, 4.0, avgdl, k1, b) + bm25_term(n, 1.0, 1.0, 4.0, avgdl, k1, b);
    assert_close(got["b"], want_b, "b with qtf");
    assert_eq!(got.len(), 1);

    // Deleting a document changes N, avgdl and df at once.
    s.call_ok("delete_document", json!({"id": "b"})).await;
    let r = s.call_ok("search", json!({"query": "power"})).await;
    let got = scores(&r);
    let (n, avgdl) = (3.0, 14.0 / 3.0);
    assert_close(
        got["a"],
        bm25_term(n, 2.0, 1.0, 6.0, avgdl, k1, b),
        "a after delete",
    );
    assert_close(
        got["c"],
        bm25_term(n, 2.0, 1.0, 6.0, avgdl, k1, b),
        "c after delete",
    );

    // Only stop words: nothing to rank, no error.
    let r = s.call_ok("search", json!({"query": "the and from"})).await;
    assert_eq!(r["hits"], json!([]));
}

#[sqlx::test(migrations = "../migrations")]
async fn k1_and_b_come_from_the_search_settings(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let keys = keys();
    let (k1, b) = (2.0, 0.3);
    let settings = Settings {
        search: SearchSettings {
            bm25: Bm25 { k1, b },
            ..SearchSettings::default()
        },
        ..Settings::default()
    };
    let app = app_with(
        runtime_pool(&admin).await,
        &keys,
        Embedder::disabled(),
        settings,
    )
    .await;
    let s = app.session(&keys.token("acme", RW)).await;
    load_hand_corpus(&s).await;
    let got = scores(&s.call_ok("search", json!({"query": "solar"})).await);
    assert_close(got["a"], bm25_term(4.0, 2.0, 3.0, 6.0, 4.5, k1, b), "a");
    assert_close(got["c"], bm25_term(4.0, 2.0, 1.0, 6.0, 4.5, k1, b), "c");
}

/// Per-tenant sums of the delta rows, and the same figures recounted from the documents themselves.
async fn stats_and_recount(admin: &PgPool) -> (Vec<(String, i64, i64)>, Vec<(String, i64, i64)>) {
    let stats = sqlx::query_as(
        "SELECT tenant_id, sum(documents)::int8, sum(tokens)::int8 FROM bm25_stats GROUP BY 1 HAVING sum(documents) <> 0 ORDER BY 1",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    let recount = sqlx::query_as(
        "SELECT tenant_id, count(*), sum(paddock_tsvector_length(setweight(to_tsvector('english', title), 'A') \
                                          || setweight(to_tsvector('english', content), 'B')))::int8 \
         FROM documents GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    (stats, recount)
}

/// Writers of the same tenant never wait on each other for statistics, and the sums stay exact: many writers
/// create, rewrite (changing lengths) and delete overlapping documents, some several per transaction, across
/// many folds of the delta rows.
#[sqlx::test(migrations = "../migrations")]
async fn concurrent_writers_keep_the_statistics_exact(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "globex", 6000, 1000).await;
    let db = Db::from_pool(runtime_pool(&admin).await);
    const WRITERS: usize = 8;
    const ROUNDS: usize = 120;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = TenantId::parse(if w % 4 == 3 { "globex" } else { "acme" }).unwrap();
            for r in 0..ROUNDS {
                // Shared ids (every writer touches doc-0..doc-19) and a writer's own ids for batches.
                let shared = format!("doc-{}", (w * 7 + r * 3) % 20);
                let words = [
                    "alpha beta",
                    "gamma delta epsilon",
                    "zeta",
                    "eta theta iota kappa lambda",
                ][(w + r) % 4];
                let mut tx = db.begin(&tenant).await?;
                match r % 5 {
                    3 => {
                        documents::delete(&mut tx, &shared).await?;
                    }
                    4 => {
                        for i in 0..3 {
                            let id = format!("w{w}-{}", (r + i) % 7);
                            documents::upsert(
                                &mut tx,
                                &id,
                                "Batch",
                                &format!("{words} {r} {i}"),
                                &json!({}),
                            )
                            .await?;
                        }
                    }
                    _ => {
                        let content = format!("{words} round {r} writer {w}");
                        documents::upsert(&mut tx, &shared, "Shared", &content, &json!({})).await?;
                    }
                }
                tx.commit().await?;
            }
            Ok::<_, paddock_runtime::db::DbError>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap()
            .expect("no writer fails (no deadlock, no serialization error)");
    }
    let (stats, recount) = stats_and_recount(&admin).await;
    assert_eq!(stats, recount);
    assert_eq!(stats.len(), 2);
    // The lengths the ranking reads are the recounted ones too.
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM documents WHERE bm25_length <> paddock_tsvector_length(tsv) \
            OR tsv <> setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', content), 'B')",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(stale, 0);
    assert_eq!(
        postings_out_of_step(&admin).await,
        0,
        "the postings follow every write"
    );
    assert_eq!(
        frequencies_out_of_step(&admin).await,
        0,
        "the document frequencies follow every write"
    );
    // Their deltas were folded: at most one folded row per term, and folds happened.
    let (folded, doubled): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) - count(DISTINCT (tenant_id, term)) FROM bm25_terms WHERE folded",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(
        folded > 0 && doubled == 0,
        "{folded} folded rows, {doubled} beyond one per term"
    );
    // Folding kept the delta rows few. Without it every delta stays a row. With it, what remains is each
    // tenant's rows since its last fold, and a fold comes with one delta in 64 on average, drawn by whichever
    // tenant wrote it. Ten runs here left 4-27% of the deltas as rows (27% when the smaller tenant, with a
    // quarter of the writes, missed its folds), so the bound sits at half.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bm25_stats")
        .fetch_one(&admin)
        .await
        .unwrap();
    let writes: i64 = sqlx::query_scalar("SELECT max(id) FROM bm25_stats")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(
        writes > 600 && rows * 2 < writes,
        "{rows} delta rows after {writes} deltas"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn statistics_are_tenant_isolated_and_only_the_database_writes_them(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "globex", 6000, 1000).await;
    let db = Db::from_pool(runtime_pool(&admin).await);
    for (t, content) in [("acme", "one two three"), ("globex", "four five")] {
        let tenant = TenantId::parse(t).unwrap();
        let mut tx = db.begin(&tenant).await.unwrap();
        documents::upsert(&mut tx, "x", "", content, &json!({}))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let acme = TenantId::parse("acme").unwrap();
    let mut tx = db.begin(&acme).await.unwrap();
    let seen: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT tenant_id, documents, tokens FROM bm25_stats")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    assert_eq!(seen, [("acme".to_owned(), 1, 3)]);
    let forged = sqlx::query(
        "INSERT INTO bm25_stats (tenant_id, documents, tokens) VALUES ('acme', 1000, 1)",
    )
    .execute(tx.conn())
    .await
    .unwrap_err();
    assert_permission_denied(&forged);
    drop(tx);
    // The postings likewise: a runtime reads its own tenant's and writes none.
    let mut tx = db.begin(&acme).await.unwrap();
    let terms: Vec<String> = sqlx::query_scalar("SELECT term::text FROM bm25_postings ORDER BY 1")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(terms, ["one", "three", "two"]);
    let forged = sqlx::query("INSERT INTO bm25_postings (tenant_id, term, doc_id, tf, dl) VALUES ('acme', 'one', 'y', 9, 9)")
        .execute(tx.conn())
        .await
        .unwrap_err();
    assert_permission_denied(&forged);
    drop(tx);
    // And the document frequencies.
    let mut tx = db.begin(&acme).await.unwrap();
    let seen: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT tenant_id, term::text, docs FROM bm25_terms ORDER BY 2")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    assert_eq!(
        seen,
        ["one", "three", "two"].map(|t| ("acme".to_owned(), t.to_owned(), 1))
    );
    let forged =
        sqlx::query("INSERT INTO bm25_terms (tenant_id, term, docs) VALUES ('acme', 'one', 1000)")
            .execute(tx.conn())
            .await
            .unwrap_err();
    assert_permission_denied(&forged);
    drop(tx);
    // The derived columns cannot be set by hand either: the trigger recomputes them.
    let mut tx = db.begin(&acme).await.unwrap();
    sqlx::query("UPDATE documents SET tsv = 'forged'::tsvector, bm25_length = 999")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (stats, recount) = stats_and_recount(&admin).await;
    assert_eq!(stats, recount);
    assert_eq!(postings_out_of_step(&admin).await, 0);
    assert_eq!(frequencies_out_of_step(&admin).await, 0);
    // Deleting a tenant (as the operator does) takes its documents, statistics, postings and terms with it.
    sqlx::query("DELETE FROM tenants WHERE id = 'acme'")
        .execute(&admin)
        .await
        .unwrap();
    for table in ["bm25_stats", "bm25_postings", "bm25_terms"] {
        let left: Vec<String> =
            sqlx::query_scalar(&format!("SELECT DISTINCT tenant_id FROM {table}"))
                .fetch_all(&admin)
                .await
                .unwrap();
        assert_eq!(left, ["globex"], "{table}");
    }
}

/// Storing an embedding or changing only metadata neither re-analyses the text nor moves the statistics or
/// rewrites the postings.
#[sqlx::test(migrations = "../migrations")]
async fn non_text_updates_leave_the_analysis_alone(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let db = Db::from_pool(runtime_pool(&admin).await);
    let acme = TenantId::parse("acme").unwrap();
    let mut tx = db.begin(&acme).await.unwrap();
    documents::upsert(&mut tx, "x", "Title", "some words here", &json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let before: i64 = sqlx::query_scalar("SELECT max(id) FROM bm25_stats")
        .fetch_one(&admin)
        .await
        .unwrap();
    let postings =
        "SELECT string_agg(term || '@' || xmin::text, ' ' ORDER BY term) FROM bm25_postings";
    let postings_before: String = sqlx::query_scalar(postings)
        .fetch_one(&admin)
        .await
        .unwrap();
    let mut tx = db.begin(&acme).await.unwrap();
    documents::upsert(&mut tx, "x", "Title", "some words here", &json!({"k": "v"}))
        .await
        .unwrap();
    let hash: String = sqlx::query_scalar("SELECT content_hash FROM documents")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert!(
        documents::store_embedding(&mut tx, "x", &hash, "m", vec![0.1; 384])
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT max(id) FROM bm25_stats")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(before, after, "no delta row for writes that keep the text");
    let postings_after: String = sqlx::query_scalar(postings)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(
        postings_before, postings_after,
        "the postings were not rewritten"
    );
    let (stats, recount) = stats_and_recount(&admin).await;
    assert_eq!(stats, recount);
}

fn unit(parts: &[(usize, f32)]) -> Vec<f32> {
    let mut v = vec![0f32; 384];
    for (i, x) in parts {
        v[*i] = *x;
    }
    v
}

/// Both fusions, recomputed from what each hit reports: convex with min-max normalisation per arm (a document
/// missing from an arm gets 0 there, not that arm's best), and weighted RRF.
#[sqlx::test(migrations = "../migrations")]
async fn fused_scores_follow_from_the_per_arm_ranks_and_scores(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let db = Db::from_pool(runtime_pool(&admin).await);
    let acme = TenantId::parse("acme").unwrap();
    let docs: [(&str, &str, Option<Vec<f32>>); 5] = [
        ("a", "solar panels on solar roofs", Some(unit(&[(0, 1.0)]))),
        ("b", "wind turbines", Some(unit(&[(1, 1.0)]))),
        (
            "c",
            "solar farms beside wind farms",
            Some(unit(&[(0, 0.6), (1, 0.8)])),
        ),
        ("d", "solar hydro dams", None),
        ("e", "tidal power", Some(unit(&[(0, 0.8), (1, 0.6)]))),
    ];
    let mut tx = db.begin(&acme).await.unwrap();
    for (id, content, v) in &docs {
        documents::upsert(&mut tx, id, "", content, &json!({}))
            .await
            .unwrap();
        if let Some(v) = v {
            let hash: String =
                sqlx::query_scalar("SELECT content_hash FROM documents WHERE id = $1")
                    .bind(id)
                    .fetch_one(tx.conn())
                    .await
                    .unwrap();
            assert!(
                documents::store_embedding(&mut tx, id, &hash, "m", v.clone())
                    .await
                    .unwrap()
            );
        }
    }
    tx.commit().await.unwrap();

    for (fusion, wl, wv) in [
        (Fusion::Convex, 1.0, 1.0),
        (Fusion::Convex, 2.0, 0.5),
        (Fusion::Rrf, 1.0, 1.0),
        (Fusion::Rrf, 1.0, 3.0),
    ] {
        let (alpha, k) = (0.3, 10.0);
        let params = HybridParams {
            query: "solar",
            vector: Some(unit(&[(1, 1.0)])),
            model: Some("m"),
            limit: 50,
            filter: None,
            lexical_weight: wl,
            vector_weight: wv,
            rrf_k: k,
            depth: 100,
            fusion,
            alpha,
            bm25: Bm25::default(),
        };
        let mut tx = db.begin(&acme).await.unwrap();
        let hits = search::hybrid(&mut tx, &params).await.unwrap();
        tx.commit().await.unwrap();
        // Lexical: a, c, d hold "solar"; vector: the four embedded documents.
        assert_eq!(hits.len(), 5, "{fusion:?}: {hits:?}");
        assert_eq!(hits.iter().filter(|h| h.lexical.is_some()).count(), 3);
        assert_eq!(hits.iter().filter(|h| h.vector.is_some()).count(), 4);
        let range = |f: &dyn Fn(&search::Hit) -> Option<f64>| {
            let s: Vec<f64> = hits.iter().filter_map(f).collect();
            (
                s.iter().copied().fold(f64::INFINITY, f64::min),
                s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let (llo, lhi) = range(&|h| h.lexical.as_ref().map(|a| a.score));
        let (vlo, vhi) = range(&|h| h.vector.as_ref().map(|a| a.score));
        for h in &hits {
            let want = match fusion {
                Fusion::Convex => {
                    let nl = h
                        .lexical
                        .as_ref()
                        .map_or(0.0, |a| (a.score - llo) / (lhi - llo));
                    let nv = h
                        .vector
                        .as_ref()
                        .map_or(0.0, |a| (a.score - vlo) / (vhi - vlo));
                    (1.0 - alpha) * wl * nl + alpha * wv * nv
                }
                Fusion::Rrf => {
                    h.lexical.as_ref().map_or(0.0, |a| wl / (k + a.rank as f64))
                        + h.vector.as_ref().map_or(0.0, |a| wv / (k + a.rank as f64))
                }
            };
            assert!(
                (h.score - want).abs() < 1e-9,
                "{fusion:?} {}: {} vs {want}",
                h.id,
                h.score
            );
        }
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{fusion:?}: ordered by fused score"
        );
        // The vector arm's cosine similarities and ranks are the hand ones.
        let b = hits
            .iter()
            .find(|h| h.id == "b")
            .unwrap()
            .vector
            .clone()
            .unwrap();
        let e = hits
            .iter()
            .find(|h| h.id == "e")
            .unwrap()
            .vector
            .clone()
            .unwrap();
        assert_eq!((b.rank, e.rank), (1, 3));
        assert!(
            (b.score - 1.0).abs() < 1e-6 && (e.score - 0.6).abs() < 1e-6,
            "{b:?} {e:?}"
        );
    }
}
