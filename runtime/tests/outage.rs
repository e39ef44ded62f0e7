//! PostgreSQL going away under a serving runtime: backends terminated mid-transaction and while idle
//! (what a restart does to every connection), then the server unreachable for a while. Each request
//! gets a precise error, never the database's own message; nothing is half-written; the same runtime
//! serves again as soon as the server is back.
//!
//! The runtime's pool is the server's own (`Db::connect_lazy`), connected through a TCP relay the
//! test can close, in front of the real test server.

use std::{
    net::SocketAddr,
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use paddock_runtime::{
    app::Settings,
    db::{Db, DbConfig},
    embed::Embedder,
};
use paddock_testkit::prelude::*;
use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::net::{TcpListener, TcpStream};

/// How long the runtime waits for a connection before answering "unavailable" (the server's default is
/// 3 s; shorter keeps the test quick).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Texts that belong to the database driver or server and must never reach a client.
const RAW_MARKERS: &[&str] = &[
    "error returned from database",
    "terminating connection",
    "administrator command",
    "pool timed out",
    "Connection refused",
    "connection reset",
    "SQLSTATE",
    "sqlx",
    "57P01",
];

/// A TCP relay in front of PostgreSQL that can refuse new connections, as a server that is down does.
struct Relay {
    addr: SocketAddr,
    accepting: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (flag, conns) = (accepting.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed at once
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns.lock().unwrap().push(relay.abort_handle());
            }
        });
        Self {
            addr,
            accepting,
            open,
        }
    }

    /// The server goes down: open connections are closed and new ones refused.
    fn down(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        for relay in self.open.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn up(&self) {
        self.accepting.store(true, Ordering::SeqCst);
    }
}

/// The runtime's pool as the server builds it, through `relay`, logged in as `paddock_runtime`.
async fn runtime_db(admin: &PgPool, relay: &Relay) -> Db {
    let mut url = login_url(admin, "paddock_runtime").await;
    url.set_ip_host(relay.addr.ip()).unwrap();
    url.set_port(Some(relay.addr.port())).unwrap();
    Db::connect_lazy(&DbConfig {
        url: url.to_string(),
        max_connections: 4,
        acquire_timeout: ACQUIRE_TIMEOUT,
        statement_cache_capacity: 100,
    })
    .unwrap()
}

fn upstream_addr() -> SocketAddr {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let opts = PgConnectOptions::from_str(&url).unwrap();
    let host = match opts.get_host() {
        "localhost" => "127.0.0.1",
        host => host,
    };
    format!("{host}:{}", opts.get_port()).parse().unwrap()
}

fn assert_no_raw_error(what: &str, body: &str) {
    for marker in RAW_MARKERS {
        assert!(
            !body.to_lowercase().contains(&marker.to_lowercase()),
            "{what} leaked {marker:?}: {body}"
        );
    }
}

/// A refusal for want of the database: 503, Retry-After, a JSON-RPC error body, no driver text.
fn assert_unavailable(what: &str, r: &Reply) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(r.header("retry-after").is_some(), "{what}: no Retry-After");
    let v = r.json();
    assert_eq!(
        v["error"]["message"], "service temporarily unavailable; retry shortly",
        "{what}: {v}"
    );
    assert_no_raw_error(what, &body);
}

async fn readyz(app: &TestApp) -> StatusCode {
    app.get("/readyz").await.status
}

async fn content_of(admin: &PgPool, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT content FROM documents WHERE tenant_id = 'acme' AND id = $1")
        .bind(id)
        .fetch_optional(admin)
        .await
        .unwrap()
}

/// Backends of the runtime's role on this test's database, as (pid, wait_event_type).
async fn runtime_backends(admin: &PgPool) -> Vec<(i32, Option<String>)> {
    sqlx::query_as(
        "SELECT pid, wait_event_type FROM pg_stat_activity \
         WHERE usename = 'paddock_runtime' AND datname = current_database()",
    )
    .fetch_all(admin)
    .await
    .unwrap()
}

async fn terminate(admin: &PgPool, pids: &[i32]) {
    for pid in pids {
        let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
            .bind(pid)
            .fetch_one(admin)
            .await
            .unwrap();
        assert!(done, "backend {pid} did not exit");
    }
}

fn search_args(query: &str) -> Value {
    json!({ "query": query, "limit": 5 })
}

#[sqlx::test(migrations = "../migrations")]
async fn database_outages_get_precise_errors_lose_nothing_and_heal(admin: PgPool) {
    provision_tenant(&admin, "acme", 100_000, 100_000).await;
    let relay = Relay::start(upstream_addr()).await;
    let keys = keys();
    let app = app_on(
        runtime_db(&admin, &relay).await,
        &keys,
        Embedder::disabled(),
        Settings::default(),
    )
    .await;
    let s = app.session(&keys.token("acme", RW)).await;
    s.upsert("a", "Original", "the original text about glaciers")
        .await;
    // Several pooled connections, as under load.
    let searches = (0..4).map(|_| s.call_ok("search", search_args("glaciers")));
    for hits in futures::future::join_all(searches).await {
        assert_eq!(hits["hits"][0]["id"], "a");
    }

    // 1. A backend terminated in the middle of a write: the write is refused with a clear error and
    //    rolled back whole (the document and its postings as before).
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM documents WHERE tenant_id = 'acme' AND id = 'a' FOR UPDATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let write = s.call(
        "upsert_document",
        json!({"id": "a", "title": "Changed", "content": "a replacement about volcanoes"}),
    );
    let kill = async {
        let started = Instant::now();
        loop {
            let waiting: Vec<i32> = runtime_backends(&admin)
                .await
                .into_iter()
                .filter(|(_, wait)| wait.as_deref() == Some("Lock"))
                .map(|(pid, _)| pid)
                .collect();
            if !waiting.is_empty() {
                terminate(&admin, &waiting).await;
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the upsert never waited on the row lock"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (result, ()) = tokio::join!(write, kill);
    lock.rollback().await.unwrap();
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("temporarily unavailable"), "{text}");
    assert_no_raw_error("the interrupted upsert", &result.to_string());
    assert_eq!(
        content_of(&admin, "a").await.as_deref(),
        Some("the original text about glaciers")
    );
    assert_eq!(postings_out_of_step(&admin).await, 0);

    // 2. Every backend terminated while idle, as a restart does: the next requests succeed; none is failed
    //    for the pool's dead connections.
    let idle: Vec<i32> = runtime_backends(&admin)
        .await
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    assert!(
        idle.len() >= 2,
        "expected several pooled connections, got {idle:?}"
    );
    terminate(&admin, &idle).await;
    for n in 0..6 {
        let r = s.call("search", search_args("glaciers")).await;
        assert_eq!(r["isError"], false, "request {n} after the restart: {r}");
    }

    // 3. The server unreachable: every request is refused promptly and precisely, nothing is written.
    relay.down();
    let started = Instant::now();
    let search = s
        .post(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "search", "arguments": search_args("glaciers")}}))
        .await;
    assert_unavailable("search while the database is down", &search);
    let write = s
        .post(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                     "params": {"name": "upsert_document",
                                "arguments": {"id": "b", "title": "B", "content": "written during the outage"}}}))
        .await;
    assert_unavailable("upsert while the database is down", &write);
    let task = app
        .send(
            Request::post("/a2a")
                .header("content-type", "application/json")
                .header(
                    "authorization",
                    format!("Bearer {}", keys.token("acme", &["tasks:run", "documents:read"])),
                )
                .body(Body::from(
                    json!({"jsonrpc": "2.0", "id": 9, "method": "SendMessage", "params": {"message": {
                        "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "glaciers"}]}}})
                    .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_unavailable("an A2A task sent while the database is down", &task);
    assert!(
        started.elapsed() < ACQUIRE_TIMEOUT * 4,
        "refusals took {:?}",
        started.elapsed()
    );
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_of(&admin, "b").await, None);
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(tasks, 0, "no task row from the refused SendMessage");

    // 4. Back: the same runtime is ready again and serves reads and writes.
    relay.up();
    let started = Instant::now();
    while readyz(&app).await != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not ready again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.upsert("b", "B", "written after the outage about glaciers")
        .await;
    let hits = s.call_ok("search", search_args("glaciers")).await;
    let ids: Vec<&str> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{hits}");
    assert!(ids.contains(&"a") && ids.contains(&"b"), "{hits}");
    assert_eq!(count_documents(&admin).await, 2);
    assert_eq!(postings_out_of_step(&admin).await, 0);
}
