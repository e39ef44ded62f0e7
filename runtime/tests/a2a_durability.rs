//! Durability across processes: the real `paddock-runtime serve` binary runs a task whose model call stalls,
//! is killed mid-task, and a second runtime on the same database answers for the task, streams it, and ends
//! it in a defined state once the dead replica's lease runs out.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use paddock_runtime::auth::dev;
use paddock_testkit::prelude::*;
use paddock_testkit::{a2a::*, model::*};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A `paddock-runtime serve` child process, killed when dropped.
struct Runtime {
    child: Child,
    base: String,
    /// The operations server (`metrics_listen`).
    metrics_base: String,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `paddock-runtime serve` on a free port; `a2a` settings are added to the test's short leases and sweeps.
async fn start_runtime(
    dir: &Path,
    name: &str,
    db_url: &str,
    keys: &Keys,
    model_url: &str,
    a2a: Value,
) -> Runtime {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let metrics_port = free_port();
    let mut config = json!({
        "listen": format!("127.0.0.1:{port}"),
        "metrics_listen": format!("127.0.0.1:{metrics_port}"),
        "database": { "url": db_url, "max_connections": 8 },
        "auth": {
            "resource": format!("{base}/mcp"),
            "issuers": [{ "issuer": ISSUER, "audience": AUDIENCE, "jwks": { "file": keys.dir.path().join(dev::JWKS_FILE) } }],
        },
        "llm": { "provider": "openai", "endpoint": model_url, "model": "m1", "timeout_ms": 120000, "max_output_tokens": 64 },
        "a2a": { "lease_ttl_ms": 2000, "sweep_interval_ms": 250, "poll_interval_ms": 100, "keepalive_ms": 500 },
        "log_format": "text",
    });
    for (k, v) in a2a.as_object().expect("a2a settings") {
        config["a2a"][k] = v.clone();
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_paddock-runtime"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("PADDOCK_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start paddock-runtime");
    let rt = Runtime {
        child,
        base,
        metrics_base: format!("http://127.0.0.1:{metrics_port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{}/readyz", rt.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return rt;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} did not become ready; log: {}",
        std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
    );
}

async fn rpc(rt: &Runtime, token: &str, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let r = reqwest::Client::new()
        .post(format!("{}/a2a", rt.base))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{method}: HTTP {}", r.status());
    let v: Value = r.json().await.unwrap();
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

/// Sends a `rag` question without waiting for the answer; returns the task.
async fn submit(rt: &Runtime, token: &str, text: &str) -> Value {
    let r = rpc(
        rt,
        token,
        "SendMessage",
        json!({ "message": message(text, json!({ "skill": "rag" })), "configuration": { "returnImmediately": true } }),
    )
    .await;
    r["task"].clone()
}

/// The runtime role's URL for the test database.
async fn runtime_url(admin: &PgPool) -> String {
    login_url(admin, "paddock_runtime").await.to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_task_survives_the_death_of_its_runtime_and_ends_in_a_defined_state(admin: PgPool) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    seed(&admin, "acme", DOCS).await;
    set_tenant(&admin, "acme", "10", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0.001", "0.002").await;
    let model = ModelServer::start(Mode::Stalls, (10, 10)).await;
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let db_url = runtime_url(&admin).await;
    let t = keys.token("acme", RUN);

    // A runs one task at a time, so a second one waits on it.
    let a = start_runtime(
        dir.path(),
        "a",
        &db_url,
        &keys,
        &model.url,
        json!({ "max_running_tasks": 1 }),
    )
    .await;
    // The binary serves /metrics on its own port only.
    let public = reqwest::get(format!("{}/metrics", a.base)).await.unwrap();
    assert_eq!(public.status(), 404);
    let ops = reqwest::get(format!("{}/metrics", a.metrics_base))
        .await
        .unwrap();
    assert_eq!(ops.status(), 200);
    assert!(
        ops.text()
            .await
            .unwrap()
            .contains("paddock_a2a_tasks_running")
    );
    // A task that finishes on A before it dies (extractive: no model call).
    let done = rpc(
        &a,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag", "model": "extractive" })) }),
    )
    .await;
    assert_eq!(done["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    let done_id = done["task"]["id"].as_str().unwrap().to_owned();

    // A task whose model call never returns: it is mid-flight when A dies.
    let id = submit(&a, &t, "breach notification").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..200 {
        if model.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(model.count(), 1, "the model call must be in flight");
    let working = rpc(&a, &t, "GetTask", json!({ "id": id })).await;
    assert_eq!(working["status"]["state"], "TASK_STATE_WORKING");
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM budget_reservations WHERE state = 'held'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(held, 1);

    // A second task waits for A's only slot: it never starts there.
    let queued = submit(&a, &t, "erasure").await;
    let queued_id = queued["id"].as_str().unwrap().to_owned();
    assert_eq!(queued["status"]["state"], "TASK_STATE_SUBMITTED");

    drop(a); // SIGKILL: no shutdown hook runs.

    model.set_mode(Mode::Canned);
    let b = start_runtime(dir.path(), "b", &db_url, &keys, &model.url, json!({})).await;
    // The restart lost nothing: the finished task is intact.
    let again = rpc(&b, &t, "GetTask", json!({ "id": done_id })).await;
    assert_eq!(again["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(again["artifacts"], done["task"]["artifacts"]);

    // B answers for the orphaned task and streams it: the Task first, then the end the sweeper gives it.
    let stream = reqwest::Client::new()
        .post(format!("{}/a2a", b.base))
        .bearer_auth(&t)
        .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask", "params": { "id": id } }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = stream.text().await.unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|b| {
            b.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(|d| serde_json::from_str(d).unwrap())
        })
        .collect();
    let first_state = events[0]["result"]["task"]["status"]["state"]
        .as_str()
        .unwrap();
    assert!(
        first_state == "TASK_STATE_WORKING" || first_state == "TASK_STATE_FAILED",
        "first event: {}",
        events[0]
    );
    let last = &events.last().unwrap()["result"];
    let last_state = last["statusUpdate"]["status"]["state"]
        .as_str()
        .or(last["task"]["status"]["state"].as_str())
        .unwrap();
    assert_eq!(last_state, "TASK_STATE_FAILED", "{events:?}");

    let task = rpc(&b, &t, "GetTask", json!({ "id": id })).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED");
    assert_eq!(task["metadata"]["reason"], "lease_expired");
    assert_eq!(
        task["status"]["message"]["metadata"]["reason"],
        "lease_expired"
    );

    // The task that never started is not failed with the dead replica: B adopts it and runs it.
    let adopted = wait_done(&b, &t, &queued_id).await;
    assert_eq!(
        adopted["status"]["state"], "TASK_STATE_COMPLETED",
        "{adopted}"
    );
    // The dead replica's reservation is charged at its estimate (the provider may have done the work), not left
    // held. Checked once the adopted task has ended too: it reserves and settles in the same budget, so before
    // that the period's figures may or may not include it.
    let (spent, reserved, ledger, orphan, estimated): (Decimal, Decimal, Decimal, Decimal, bool) =
        sqlx::query_as(
            "SELECT p.spent, p.reserved, \
                (SELECT sum(cost) FROM usage_ledger WHERE tenant_id = 'acme'), \
                (SELECT sum(cost) FROM usage_ledger WHERE task_id = $1::uuid), \
                (SELECT bool_and(estimated) FROM usage_ledger WHERE task_id = $1::uuid) \
           FROM budget_periods p WHERE p.tenant_id = 'acme'",
        )
        .bind(&id)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(reserved, Decimal::ZERO);
    assert_eq!(ledger, spent, "every settled reservation is one ledger row");
    assert!(
        orphan > Decimal::ZERO && estimated,
        "the orphan's cost: {orphan}"
    );
    assert_eq!(
        model.count(),
        2,
        "one call from A (lost with it), one from B"
    );
    drop(b);
}

/// Polls GetTask on `rt` until the task is terminal.
async fn wait_done(rt: &Runtime, token: &str, id: &str) -> Value {
    for _ in 0..300 {
        let task = rpc(rt, token, "GetTask", json!({ "id": id })).await;
        let state = task["status"]["state"].as_str().unwrap();
        if ["COMPLETED", "FAILED", "CANCELED", "REJECTED"]
            .iter()
            .any(|s| state.ends_with(s))
        {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} did not finish within 30 s");
}

#[sqlx::test(migrations = "../migrations")]
async fn sigterm_hands_waiting_tasks_to_the_next_runtime_and_lets_the_running_one_finish(
    admin: PgPool,
) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    seed(&admin, "acme", DOCS).await;
    set_tenant(&admin, "acme", "10", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0.001", "0.002").await;
    let model = ModelServer::start(Mode::Slow(1500), (10, 10)).await;
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let db_url = runtime_url(&admin).await;
    let t = keys.token("acme", RUN);
    let a2a = json!({ "max_running_tasks": 1, "drain_timeout_ms": 10000 });
    let mut a = start_runtime(dir.path(), "a", &db_url, &keys, &model.url, a2a).await;

    let send = async |text: &str| {
        submit(&a, &t, text).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut ids = vec![send("erasure").await];
    while model.count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ids.push(send("breach notification").await);
    ids.push(send("erasure of personal data").await);
    // A client follows a waiting task on A.
    let stream = reqwest::Client::new()
        .post(format!("{}/a2a", a.base))
        .bearer_auth(&t)
        .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask", "params": { "id": ids[2] } }))
        .send()
        .await
        .unwrap();
    let followed = tokio::spawn(stream.text());

    // SIGTERM, as Kubernetes stops a pod.
    let stopped = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Once the drain has closed the public port, the scraper still reads A's metrics.
    let mut scraped_while_draining = None;
    let status = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        if scraped_while_draining.is_none()
            && reqwest::get(format!("{}/healthz", a.base)).await.is_err()
        {
            let m = reqwest::get(format!("{}/metrics", a.metrics_base)).await;
            scraped_while_draining = Some(m.map(|r| r.status()));
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "A did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "A exited with {status}");
    assert_eq!(
        scraped_while_draining.map(|r| r.map_err(|e| e.to_string())),
        Some(Ok(reqwest::StatusCode::OK)),
        "A's metrics while it drained"
    );
    // It waited for its running task (a 1.5 s model call), not for the whole drain timeout: the open
    // stream ended when the drain began, after the Task snapshot; its client would resubscribe elsewhere.
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "{:?}",
        stopped.elapsed()
    );
    let followed = followed.await.unwrap().unwrap();
    assert!(followed.contains("TASK_STATE_SUBMITTED"), "{followed}");

    // The replacement starts after A is gone (with no other replica, nobody adopted the tasks yet).
    let b = start_runtime(dir.path(), "b", &db_url, &keys, &model.url, json!({})).await;
    for id in &ids {
        let task = wait_done(&b, &t, id).await;
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    }
    assert_eq!(model.count(), 3, "each task called the model once");
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    assert_eq!(
        log.matches("handed a waiting task to the other replicas")
            .count(),
        2,
        "{log}"
    );
    drop(b);
}
