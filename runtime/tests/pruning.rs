//! The lexical arm's pruning (MaxScore over per-tenant document frequencies, `search::hybrid_sql`): on a corpus
//! with a natural spread of word frequencies, every ranking it returns equals the exhaustive BM25 ranking
//! computed from all postings (one-term queries, only stop words, common and rare terms together, a query
//! term repeated, a metadata filter, ties at the last rank), while a query with common words reads far fewer
//! postings than its terms hold.

use paddock_runtime::{
    db::{Db, TenantId},
    search::{self, Bm25, Fusion, HybridParams},
};
use paddock_testkit::prelude::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const TENANT: &str = "acme";
const DOCS: usize = 6000;
/// Identical documents, whose scores tie for every query.
const TWINS: usize = 50;

/// A deterministic xorshift generator: the corpus is the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Words `w1`..`w3000` with a frequency about proportional to 1/rank (`w1` is in nearly every document, `w1000`
/// in about 30), stop words among them, and a metadata field on every other document; plus [`TWINS`] identical
/// documents.
async fn load_corpus(admin: &PgPool) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    let mut metadata = Vec::new();
    for i in 0..DOCS {
        let words = 30 + (rng.next() * 30.0) as usize;
        let text: Vec<String> = (0..words)
            .map(|_| match (rng.next() * 3000f64.ln()).exp() as usize {
                r if r % 17 == 0 => ["the", "of", "and"][r % 3].to_owned(),
                r => format!("w{r}"),
            })
            .collect();
        ids.push(format!("d{i:05}"));
        texts.push(text.join(" "));
        metadata.push(json!({"k": if i % 2 == 0 { "a" } else { "b" }}).to_string());
    }
    for i in 0..TWINS {
        ids.push(format!("twin{i:03}"));
        texts.push("w5 w5 w700 w900".to_owned());
        metadata.push(json!({"k": "a"}).to_string());
    }
    sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash, metadata) \
         SELECT $1, i, t, 'h', m::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS x(i, t, m)",
    )
    .bind(TENANT)
    .bind(&ids)
    .bind(&texts)
    .bind(&metadata)
    .execute(admin)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE documents, bm25_postings, bm25_terms, bm25_stats")
        .execute(admin)
        .await
        .unwrap();
}

/// Exhaustive BM25 as the owner: df counted over the postings, every posting of every query term scored.
const EXHAUSTIVE: &str = "\
WITH terms AS (SELECT lexeme AS term, cardinality(positions)::float8 AS qtf FROM unnest(to_tsvector('english', $1))), \
corpus AS (SELECT count(*)::float8 AS n, avg(bm25_length)::float8 AS avgdl FROM documents WHERE tenant_id = $4), \
df AS (SELECT p.term, count(*)::float8 AS df FROM bm25_postings p JOIN terms t ON t.term = p.term \
       WHERE p.tenant_id = $4 GROUP BY p.term) \
SELECT p.doc_id, sum(t.qtf * ln(1 + (c.n - df.df + 0.5) / (df.df + 0.5)) * p.tf * 2.2 \
                     / (p.tf + 1.2 * (1 - 0.75 + 0.75 * p.dl / c.avgdl))) AS score \
FROM terms t JOIN df USING (term) JOIN bm25_postings p ON p.tenant_id = $4 AND p.term = t.term, corpus c \
WHERE $2::jsonb IS NULL OR EXISTS (SELECT 1 FROM documents d WHERE d.tenant_id = $4 AND d.id = p.doc_id AND d.metadata @> $2) \
GROUP BY p.doc_id ORDER BY score DESC, p.doc_id LIMIT $3";

async fn exhaustive(
    admin: &PgPool,
    query: &str,
    filter: Option<&Value>,
    depth: i64,
) -> Vec<(String, f64)> {
    sqlx::query_as(EXHAUSTIVE)
        .bind(query)
        .bind(filter)
        .bind(depth)
        .bind(TENANT)
        .fetch_all(admin)
        .await
        .unwrap()
}

fn lexical_arm<'a>(query: &'a str, filter: Option<&'a Value>, depth: i64) -> HybridParams<'a> {
    HybridParams {
        query,
        vector: None,
        model: None,
        limit: depth,
        filter,
        lexical_weight: 1.0,
        vector_weight: 0.0,
        rrf_k: 60.0,
        depth,
        fusion: Fusion::Rrf,
        alpha: 0.5,
        bm25: Bm25::default(),
    }
}

/// The lexical arm's ranking as the runtime computes it, under the tenant.
async fn pruned(db: &Db, query: &str, filter: Option<&Value>, depth: i64) -> Vec<(String, f64)> {
    let mut tx = db.begin(&TenantId::parse(TENANT).unwrap()).await.unwrap();
    let hits = search::hybrid(&mut tx, &lexical_arm(query, filter, depth))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    hits.into_iter()
        .map(|h| {
            let arm = h.lexical.expect("a lexical hit");
            (h.id, arm.score)
        })
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn pruned_rankings_equal_the_exhaustive_ones(admin: PgPool) {
    provision_tenant(&admin, TENANT, 6000, 1000).await;
    load_corpus(&admin).await;
    let db = Db::from_pool(runtime_pool(&admin).await);
    let filter = json!({"k": "a"});
    let queries = [
        "w1",                // one term, in nearly every document
        "w250",              // one rare term
        "the of and",        // only stop words: nothing to rank
        "w1 w2 w3",          // only common terms
        "w1 w2 w700",        // common terms and a rare one
        "w3 w40 w400 w1500", // a spread
        "w1 w1 w900",        // a term repeated (qtf 2)
        "w700 w900 w5",      // the twins tie for the first places
        "w5 w2",             // the twins among many documents of the same terms
        "zzz",               // a term no document holds
        "w2 zzz w60",        // and beside others
    ];
    let mut ranked = 0;
    for q in queries {
        for depth in [1, 10, 40, 120] {
            for f in [None, Some(&filter)] {
                let want = exhaustive(&admin, q, f, depth).await;
                let got = pruned(&db, q, f, depth).await;
                assert_same_ranking(
                    &got,
                    &want,
                    &format!("{q:?} at depth {depth}, filter {f:?}"),
                );
                ranked += usize::from(!want.is_empty());
            }
        }
    }
    assert!(ranked > 60, "most queries rank something: {ranked}");
    // The twins tie with each other exactly, and the ranking cuts through them: they go by id, up to the cut.
    let twins = pruned(&db, "w700 w900 w5", None, 40).await;
    assert_eq!(
        twins.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        (0..40).map(|i| format!("twin{i:03}")).collect::<Vec<_>>(),
        "{twins:?}"
    );
    assert!(twins.windows(2).all(|w| w[0].1 == w[1].1), "{twins:?}");
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The same ranking up to rounding: the same score at every rank, and each document at its exhaustive score.
/// Two formulas that sum the same terms in another order can differ in the last bits, so documents whose
/// scores are equal up to rounding may trade places, or places at the cut.
fn assert_same_ranking(got: &[(String, f64)], want: &[(String, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} against {want:?}");
    let cut = want.last().map_or(0.0, |(_, s)| *s);
    for (rank, ((id, g), (_, w))) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, *w),
            "{what}: rank {rank} scored {g} ({id}), exhaustively {w}"
        );
        match want.iter().find(|(other, _)| other == id) {
            Some((_, exact)) => assert!(
                close(*g, *exact),
                "{what}: {id} scored {g}, exhaustively {exact}"
            ),
            None => assert!(
                close(*g, cut),
                "{what}: {id} ({g}) is not in the exhaustive ranking"
            ),
        }
    }
    let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "{what}: a document twice in {got:?}");
}

/// The node rows of an `EXPLAIN (ANALYZE, FORMAT JSON)` plan that read `relation`, summed.
fn rows_read(plan: &Value, relation: &str) -> f64 {
    let own = if plan["Relation Name"] == relation {
        plan["Actual Rows"].as_f64().unwrap_or(0.0) * plan["Actual Loops"].as_f64().unwrap_or(1.0)
    } else {
        0.0
    };
    own + plan["Plans"]
        .as_array()
        .map(|children| children.iter().map(|c| rows_read(c, relation)).sum())
        .unwrap_or(0.0)
}

#[sqlx::test(migrations = "../migrations")]
async fn common_words_are_probed_not_read_through(admin: PgPool) {
    provision_tenant(&admin, TENANT, 6000, 1000).await;
    load_corpus(&admin).await;
    let tenant = TenantId::parse(TENANT).unwrap();
    let postings = tenant.partition("bm25_postings");
    let db = Db::from_pool(runtime_pool(&admin).await);
    for (query, fraction) in [("w1 w2 w700", 0.3), ("w1 w3 w40 w400", 0.6)] {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bm25_postings WHERE tenant_id = $1 AND term = ANY (tsvector_to_array(to_tsvector('english', $2)))",
        )
        .bind(TENANT)
        .bind(query)
        .fetch_one(&admin)
        .await
        .unwrap();
        let p = lexical_arm(query, None, 10);
        let sql = format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) {}",
            search::hybrid_sql(&tenant)
        );
        let mut q = sqlx::query_scalar::<_, Value>(&sql);
        for (ty, value) in p.text_binds() {
            q = match (ty, value) {
                ("int8", v) => q.bind(v.map(|s| s.parse::<i64>().unwrap())),
                ("float8", v) => q.bind(v.map(|s| s.parse::<f64>().unwrap())),
                ("jsonb", _) => q.bind(None::<Value>),
                ("vector", _) => q.bind(None::<pgvector::Vector>),
                (_, v) => q.bind(v),
            };
        }
        let mut tx = db.begin(&tenant).await.unwrap();
        let plan = q.bind(TENANT).fetch_one(tx.conn()).await.unwrap();
        tx.commit().await.unwrap();
        let read = rows_read(&plan[0]["Plan"], &postings);
        eprintln!("{query:?}: {read} of {total}");
        assert!(
            total > 8000 && read < fraction * total as f64,
            "{query:?} read {read} of its terms' {total} postings"
        );
    }
}
