//! A2A behaviour against the real router and a real database: both dialects, errors, streams, isolation,
//! the workflows (extractive and with a model server written here), cancellation races, and budgets under
//! concurrency.

use std::{collections::BTreeSet, time::Duration};

use axum::{body::Body, http::Request};
use paddock_runtime::a2a::{A2aSettings, Llm, worker};
use paddock_testkit::prelude::*;
use paddock_testkit::{a2a::*, model::*};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn extractive_app(admin: &PgPool, keys: &Keys) -> TestApp {
    a2a_app(admin, keys, fast_settings(), Llm::extractive()).await
}

async fn setup(admin: &PgPool) {
    provision_tenant(admin, "acme", 60000, 10000).await;
    seed(admin, "acme", DOCS).await;
}

// ---- agent card ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn agent_card_is_public_cacheable_and_names_the_endpoint(admin: PgPool) {
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let r = app.get("/.well-known/agent-card.json").await;
    assert_eq!(r.status, 200);
    let etag = r.header("etag").expect("etag");
    assert!(r.header("cache-control").unwrap().contains("max-age"));
    let card = r.json();
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        "http://127.0.0.1:8080/a2a"
    );
    assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
    assert_eq!(card["supportedInterfaces"][0]["protocolVersion"], "1.0");
    assert_eq!(card["capabilities"]["streaming"], true);
    assert_eq!(card["capabilities"]["pushNotifications"], false);
    let skills: BTreeSet<&str> = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(skills, BTreeSet::from(["rag", "research"]));
    assert_eq!(
        card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["bearerFormat"],
        "JWT"
    );
    assert!(
        card["securityRequirements"][0]["schemes"]["bearer"]["list"]
            .as_array()
            .unwrap()
            .contains(&json!("tasks:run"))
    );

    let again = app
        .send(
            Request::get("/.well-known/agent-card.json")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let legacy = app.get("/.well-known/agent.json").await;
    assert_eq!(legacy.status, 200);
    let legacy = legacy.json();
    assert_eq!(legacy["url"], "http://127.0.0.1:8080/a2a");
    assert_eq!(legacy["protocolVersion"], "0.3.0");
    assert_eq!(legacy["securitySchemes"]["bearer"]["type"], "http");
}

// ---- dialects -----------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn send_message_and_get_task_speak_a2a_1_0(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("What is the right to erasure?", json!({ "skill": "rag" })) }),
    )
    .await;
    let task = &r["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    assert!(task.get("kind").is_none());
    assert_eq!(task["history"][0]["role"], "ROLE_USER");
    assert_eq!(
        task["history"].as_array().unwrap().last().unwrap()["role"],
        "ROLE_AGENT"
    );
    assert!(
        task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("verified")
    );
    let answer = artifact(task, "answer");
    assert!(
        answer["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("[gdpr-art-17]"),
        "{answer}"
    );
    assert!(answer["parts"][0].get("kind").is_none());
    assert_eq!(answer["parts"][1]["data"]["verified"], true);
    assert_eq!(task["metadata"]["cost"], "0");
    assert_eq!(task["metadata"]["model"], "extractive");

    let id = task["id"].as_str().unwrap();
    let got = ok(&app, &t, "GetTask", json!({ "id": id })).await;
    assert_eq!(got["id"], task["id"]);
    assert_eq!(got["contextId"], task["contextId"]);
    assert_eq!(got["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(
        got["artifacts"].as_array().unwrap().len(),
        task["artifacts"].as_array().unwrap().len()
    );
    let short = ok(&app, &t, "GetTask", json!({ "id": id, "historyLength": 1 })).await;
    assert_eq!(short["history"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn message_send_and_tasks_get_speak_a2a_0_3(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    let task = ok(&app, &t, "message/send", json!({ "message": message_v03("When must a breach be notified?", json!({ "skill": "rag" })) })).await;
    assert_eq!(task["kind"], "task");
    assert_eq!(task["status"]["state"], "completed", "{task}");
    assert_eq!(task["history"][0]["role"], "user");
    assert_eq!(task["history"][0]["kind"], "message");
    assert_eq!(task["history"][0]["parts"][0]["kind"], "text");
    let answer = artifact(&task, "answer");
    assert_eq!(answer["parts"][0]["kind"], "text");
    assert_eq!(answer["parts"][1]["kind"], "data");
    assert!(
        answer["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("[gdpr-art-33]"),
        "{answer}"
    );

    let got = ok(&app, &t, "tasks/get", json!({ "id": task["id"] })).await;
    assert_eq!(got["kind"], "task");
    assert_eq!(got["status"]["state"], "completed");
    // The same task read through the 1.0 dialect.
    let v1 = ok(&app, &t, "GetTask", json!({ "id": task["id"] })).await;
    assert_eq!(v1["status"]["state"], "TASK_STATE_COMPLETED");
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_tasks_and_finished_cancels_get_their_a2a_errors(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    let missing = uuid::Uuid::new_v4().to_string();
    for (method, params) in [
        ("GetTask", json!({ "id": missing })),
        ("tasks/get", json!({ "id": missing })),
        ("CancelTask", json!({ "id": missing })),
        ("tasks/cancel", json!({ "id": missing })),
        ("GetTask", json!({ "id": "not-a-uuid" })),
    ] {
        let e = fails(&app, &t, method, params).await;
        assert_eq!(e["code"], -32001, "{method}: {e}");
    }

    let done = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    let id = done["task"]["id"].clone();
    assert_eq!(done["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    for method in ["CancelTask", "tasks/cancel"] {
        let e = fails(&app, &t, method, json!({ "id": id })).await;
        assert_eq!(e["code"], -32002, "{method}: {e}");
    }
    // A follow-up message on a finished task is not something these skills take.
    let mut follow = message("more", json!({}));
    follow["taskId"] = id.clone();
    assert_eq!(
        fails(&app, &t, "SendMessage", json!({ "message": follow })).await["code"],
        -32004
    );

    assert_eq!(
        fails(&app, &t, "tasks/pushNotificationConfig/set", json!({})).await["code"],
        -32003
    );
    assert_eq!(
        fails(&app, &t, "CreateTaskPushNotificationConfig", json!({})).await["code"],
        -32003
    );
    assert_eq!(
        fails(&app, &t, "tasks/send", json!({})).await["code"],
        -32601
    );
    let bad_version = call_with(
        &app,
        &t,
        "GetTask",
        json!({ "id": missing }),
        &[("a2a-version", "2.0")],
    )
    .await;
    assert_eq!(bad_version.json()["error"]["code"], -32009);
    let e = fails(
        &app,
        &t,
        "SendMessage",
        json!({ "message": { "role": "ROLE_USER", "parts": [] } }),
    )
    .await;
    assert_eq!(e["code"], -32602);
    let e = fails(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("q", json!({ "skill": "poetry" })) }),
    )
    .await;
    assert_eq!(e["code"], -32602);
    assert!(e["message"].as_str().unwrap().contains("research"), "{e}");
    let e = fails(&app, &t, "SendMessage", json!({ "message": message("q", json!({})), "configuration": { "acceptedOutputModes": ["image/png"] } })).await;
    assert_eq!(e["code"], -32005);
    // Parse errors keep the JSON-RPC shape.
    let raw = app
        .send(
            Request::post("/a2a")
                .header("authorization", format!("Bearer {t}"))
                .header("content-type", "application/json")
                .body(Body::from("{nope"))
                .unwrap(),
        )
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.json()["error"]["code"], -32700);
}

/// A2A 1.0.1 over JSON-RPC: every error is HTTP 200 with the error object; the `A2A-Version` header decides the
/// version, an empty one meaning 0.3; `pageSize` outside 1–100, 0 included, is invalid.
#[sqlx::test(migrations = "../migrations")]
async fn errors_are_http_200_and_the_version_header_is_honoured(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    for (body, code) in [
        ("{nope", -32700),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{}}]"#,
            -32600,
        ),
        (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"GetTask"}"#, -32600),
    ] {
        let raw = app
            .send(
                Request::post("/a2a")
                    .header("authorization", format!("Bearer {t}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            (raw.status.as_u16(), raw.json()["error"]["code"].as_i64()),
            (200, Some(code)),
            "{body}"
        );
    }

    let missing = "0190a4a8-0000-7000-8000-000000000000";
    for version in ["", "1.0", "1.0.1", "0.3"] {
        let r = call_with(
            &app,
            &t,
            "GetTask",
            json!({ "id": missing }),
            &[("a2a-version", version)],
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
            (200, Some(-32001)),
            "version {version:?}"
        );
    }
    let r = call_with(
        &app,
        &t,
        "GetTask",
        json!({ "id": missing }),
        &[("a2a-version", "2.0")],
    )
    .await;
    assert_eq!(r.status, 200);
    let e = &r.json()["error"];
    assert_eq!(e["code"], -32009);
    assert_eq!(e["data"]["supportedVersions"], json!(["1.0", "0.3"]));

    for size in [0, 101, -1] {
        let e = fails(&app, &t, "ListTasks", json!({ "pageSize": size })).await;
        assert_eq!(e["code"], -32602, "pageSize {size}");
        assert!(
            e["message"].as_str().unwrap().contains("between 1 and 100"),
            "{e}"
        );
    }
    assert_eq!(
        ok(&app, &t, "ListTasks", json!({ "pageSize": 1 })).await["pageSize"],
        1
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn tokens_need_the_task_scopes(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let read_only = keys.token("acme", &["documents:read"]);
    let r = call(
        &app,
        &read_only,
        "SendMessage",
        json!({ "message": message("q", json!({})) }),
    )
    .await;
    assert_eq!(r.status, 403);
    let no_docs = keys.token("acme", &["tasks:run"]);
    let r = call(
        &app,
        &no_docs,
        "SendMessage",
        json!({ "message": message("q", json!({})) }),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &app,
        &read_only,
        "GetTask",
        json!({ "id": uuid::Uuid::new_v4() }),
    )
    .await;
    assert_eq!(r.status, 403);
    // No token at all: the bearer challenge.
    let anon = app
        .send(
            Request::post("/a2a")
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(anon.status, 401);
    assert!(
        anon.header("www-authenticate")
            .unwrap()
            .contains("resource_metadata")
    );
}

// ---- streams ------------------------------------------------------------------------------------------------

fn is_terminal_v1(s: &str) -> bool {
    [
        "TASK_STATE_COMPLETED",
        "TASK_STATE_FAILED",
        "TASK_STATE_CANCELED",
        "TASK_STATE_REJECTED",
    ]
    .contains(&s)
}

#[sqlx::test(migrations = "../migrations")]
async fn streams_send_the_task_first_and_close_on_a_terminal_state(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);

    let r = call(
        &app,
        &t,
        "SendStreamingMessage",
        json!({ "message": message("breach notification and erasure", json!({})) }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/event-stream"),
        "{}",
        r.content_type
    );
    let events = r.events();
    assert!(events.len() >= 4, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["jsonrpc"] == "2.0" && e["id"] == "req-1")
    );
    let first = &events[0]["result"];
    assert!(
        first.get("task").is_some(),
        "first event must be the Task: {first}"
    );
    let task_id = first["task"]["id"].clone();
    let last = &events.last().unwrap()["result"];
    assert!(
        is_terminal_v1(last["statusUpdate"]["status"]["state"].as_str().unwrap()),
        "{last}"
    );
    assert_eq!(
        last["statusUpdate"]["status"]["state"],
        "TASK_STATE_COMPLETED"
    );
    assert!(
        events[1..]
            .iter()
            .all(|e| e["result"].get("statusUpdate").is_some()
                || e["result"].get("artifactUpdate").is_some())
    );
    assert!(events.iter().all(|e| e["result"].get("kind").is_none()));
    assert!(
        events
            .iter()
            .all(|e| e["result"]["statusUpdate"]["taskId"].is_null()
                || e["result"]["statusUpdate"]["taskId"] == task_id)
    );
    let artifacts: Vec<&str> = events
        .iter()
        .filter_map(|e| e["result"]["artifactUpdate"]["artifact"]["artifactId"].as_str())
        .collect();
    assert!(
        artifacts.contains(&"plan") && artifacts.contains(&"report"),
        "{artifacts:?}"
    );
    let steps: Vec<&str> = events
        .iter()
        .filter_map(|e| {
            e["result"]["statusUpdate"]["status"]["message"]["metadata"]["step"].as_str()
        })
        .collect();
    for step in ["plan", "search", "read", "synthesize", "verify"] {
        assert!(
            steps.contains(&step),
            "no progress for step {step}: {steps:?}"
        );
    }

    // 0.3: kind discriminators and `final` only on the last status update.
    let r = call(
        &app,
        &t,
        "message/stream",
        json!({ "message": message_v03("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    assert!(r.content_type.starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(events[0]["result"]["kind"], "task");
    let statuses: Vec<&Value> = events
        .iter()
        .map(|e| &e["result"])
        .filter(|e| e["kind"] == "status-update")
        .collect();
    assert!(statuses.len() >= 2);
    for s in &statuses[..statuses.len() - 1] {
        assert_eq!(s["final"], false, "{s}");
    }
    let last = statuses.last().unwrap();
    assert_eq!(last["final"], true);
    assert_eq!(last["status"]["state"], "completed");
    assert!(
        events
            .iter()
            .any(|e| e["result"]["kind"] == "artifact-update")
    );
    assert_eq!(events.last().unwrap()["result"]["kind"], "status-update");
}

#[sqlx::test(migrations = "../migrations")]
async fn errors_on_streaming_calls_arrive_as_sse_events(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    for (method, params, code) in [
        (
            "SendStreamingMessage",
            json!({ "message": { "role": "ROLE_USER" } }),
            -32602,
        ),
        ("message/stream", json!({}), -32602),
        (
            "SubscribeToTask",
            json!({ "id": uuid::Uuid::new_v4() }),
            -32001,
        ),
        ("tasks/resubscribe", json!({ "id": "nope" }), -32001),
    ] {
        let r = call(&app, &t, method, params).await;
        assert_eq!(r.status, 200, "{method}");
        assert!(
            r.content_type.starts_with("text/event-stream"),
            "{method}: {}",
            r.content_type
        );
        let events = r.events();
        assert_eq!(events.len(), 1, "{method}: {events:?}");
        assert_eq!(events[0]["error"]["code"], code, "{method}: {events:?}");
        assert_eq!(events[0]["id"], "req-1");
    }
    // A finished task has nothing left to stream.
    let done = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    let r = call(
        &app,
        &t,
        "SubscribeToTask",
        json!({ "id": done["task"]["id"] }),
    )
    .await;
    assert_eq!(r.events()[0]["error"]["code"], -32004);
}

#[sqlx::test(migrations = "../migrations")]
async fn subscribe_sends_the_current_task_and_follows_it_until_canceled(admin: PgPool) {
    setup(&admin).await;
    provision_tenant(&admin, "globex", 60000, 10000).await;
    set_tenant(&admin, "acme", "10", &["m1"], true).await;
    set_price(&admin, "acme", "m1", "0", "0").await;
    let server = ModelServer::start(Mode::Stalls, (10, 10)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(30), 64),
    )
    .await;
    let t = keys.token("acme", RUN);
    let id = start(&app, &t, "erasure", json!({ "skill": "rag" })).await;
    // Wait until the model call is in flight.
    for _ in 0..200 {
        if server.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(server.count(), 1);

    // Another replica (same database) answers and streams the task.
    let other = a2a_app(&admin, &keys, fast_settings(), Llm::extractive()).await;
    let sub = {
        let other = &other;
        let t = t.clone();
        let id = id.clone();
        async move { call(other, &t, "SubscribeToTask", json!({ "id": id })).await }
    };
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ok(&other, &t, "CancelTask", json!({ "id": id })).await
    };
    let (r, canceled) = tokio::join!(sub, cancel);
    assert_eq!(canceled["status"]["state"], "TASK_STATE_CANCELED");
    let events = r.events();
    assert_eq!(
        events[0]["result"]["task"]["status"]["state"], "TASK_STATE_WORKING",
        "{events:?}"
    );
    let last = &events.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(last["status"]["state"], "TASK_STATE_CANCELED", "{events:?}");
    assert_eq!(last["metadata"]["reason"], "canceled");

    // Tenant B sees none of it.
    let b = keys.token("globex", RUN);
    for (method, params) in [
        ("GetTask", json!({ "id": id })),
        ("CancelTask", json!({ "id": id })),
    ] {
        assert_eq!(
            fails(&app, &b, method, params).await["code"],
            -32001,
            "{method}"
        );
    }
}

// ---- isolation ----------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn tenant_b_cannot_get_list_cancel_or_subscribe_to_tenant_a_tasks(admin: PgPool) {
    setup(&admin).await;
    provision_tenant(&admin, "globex", 60000, 10000).await;
    set_tenant(&admin, "acme", "10", &["m1"], true).await;
    set_price(&admin, "acme", "m1", "0", "0").await;
    let server = ModelServer::start(Mode::Stalls, (1, 1)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        // A lease long enough that a loaded machine never lets it lapse: the task must still be running at the end.
        A2aSettings {
            lease_ttl: Duration::from_secs(60),
            ..fast_settings()
        },
        openai_llm(&server.url, "m1", Duration::from_secs(30), 64),
    )
    .await;
    let alice = keys.token_for("acme", "alice", RUN);
    let id = start(&app, &alice, "erasure", json!({ "skill": "rag" })).await;

    let b = keys.token_for(
        "globex",
        "alice",
        &["tasks:run", "tasks:admin", "documents:read"],
    );
    assert_eq!(
        fails(&app, &b, "GetTask", json!({ "id": id })).await["code"],
        -32001
    );
    assert_eq!(
        fails(&app, &b, "CancelTask", json!({ "id": id })).await["code"],
        -32001
    );
    assert_eq!(
        fails(&app, &b, "tasks/cancel", json!({ "id": id })).await["code"],
        -32001
    );
    let sub = call(&app, &b, "SubscribeToTask", json!({ "id": id })).await;
    assert_eq!(sub.events()[0]["error"]["code"], -32001);
    let listed = ok(&app, &b, "ListTasks", json!({})).await;
    assert_eq!(listed["tasks"], json!([]));
    assert_eq!(listed["totalSize"], 0);

    // Within the tenant, tasks are per user unless the token carries tasks:admin.
    let bob = keys.token_for("acme", "bob", RUN);
    assert_eq!(
        fails(&app, &bob, "GetTask", json!({ "id": id })).await["code"],
        -32001
    );
    assert_eq!(ok(&app, &bob, "ListTasks", json!({})).await["totalSize"], 0);
    let admin_tok = keys.token_for("acme", "ops", &["tasks:admin"]);
    let all = ok(&app, &admin_tok, "ListTasks", json!({})).await;
    assert_eq!(all["totalSize"], 1);
    assert_eq!(all["tasks"][0]["id"], id.as_str());
    assert_eq!(
        ok(&app, &alice, "ListTasks", json!({})).await["totalSize"],
        1
    );

    // The task is untouched by all of that.
    let still = ok(&app, &alice, "GetTask", json!({ "id": id })).await;
    assert_eq!(still["status"]["state"], "TASK_STATE_WORKING");
    ok(&app, &alice, "CancelTask", json!({ "id": id })).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn list_tasks_pages_and_filters(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = message(&format!("erasure {i}"), json!({ "skill": "rag" }));
        m["contextId"] = json!(if i % 2 == 0 { "even" } else { "odd" });
        let r = ok(&app, &t, "SendMessage", json!({ "message": m })).await;
        ids.push(r["task"]["id"].as_str().unwrap().to_owned());
    }
    let page1 = ok(&app, &t, "ListTasks", json!({ "pageSize": 2 })).await;
    assert_eq!(page1["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(page1["totalSize"], 5);
    assert_eq!(page1["tasks"][0]["id"], ids[4].as_str(), "newest first");
    let token = page1["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let page2 = ok(
        &app,
        &t,
        "ListTasks",
        json!({ "pageSize": 2, "pageToken": token }),
    )
    .await;
    assert_eq!(page2["tasks"][0]["id"], ids[2].as_str());
    let page3 = ok(
        &app,
        &t,
        "ListTasks",
        json!({ "pageSize": 2, "pageToken": page2["nextPageToken"] }),
    )
    .await;
    assert_eq!(page3["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(page3["nextPageToken"], "");
    let even = ok(&app, &t, "ListTasks", json!({ "contextId": "even" })).await;
    assert_eq!(even["totalSize"], 3);
    let done = ok(
        &app,
        &t,
        "ListTasks",
        json!({ "status": "TASK_STATE_COMPLETED", "includeArtifacts": true }),
    )
    .await;
    assert_eq!(done["totalSize"], 5);
    assert!(!done["tasks"][0]["artifacts"].as_array().unwrap().is_empty());
    assert_eq!(
        fails(&app, &t, "ListTasks", json!({ "pageToken": "x!" })).await["code"],
        -32602
    );
    assert_eq!(
        fails(&app, &t, "ListTasks", json!({ "pageSize": 1000 })).await["code"],
        -32602
    );
}

// ---- workflows ----------------------------------------------------------------------------------------------

fn retrieved_ids(task: &Value) -> BTreeSet<String> {
    task["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["artifactId"].as_str().unwrap().starts_with("search"))
        .flat_map(|a| {
            a["parts"][0]["data"]["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Every citation in the report text is a retrieved document, and the data part says the same.
fn assert_citations_resolve(task: &Value, artifact_id: &str) -> Vec<String> {
    let a = artifact(task, artifact_id);
    let text = a["parts"][0]["text"].as_str().unwrap();
    let retrieved = retrieved_ids(task);
    let cited: Vec<String> = a["parts"][1]["data"]["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!cited.is_empty(), "no citations in {text}");
    for c in &cited {
        assert!(
            retrieved.contains(c),
            "citation {c} was not retrieved ({retrieved:?})"
        );
        assert!(
            text.contains(&format!("[{c}]")),
            "{c} not cited in the text"
        );
    }
    // Every bracketed id in the text is one of the verified citations.
    for part in text.split('[').skip(1) {
        let id = part.split(']').next().unwrap();
        assert!(
            cited.iter().any(|c| c == id),
            "unverified citation [{id}] in {text}"
        );
    }
    assert_eq!(a["parts"][1]["data"]["verified"], true);
    cited
}

#[sqlx::test(migrations = "../migrations")]
async fn extractive_research_writes_a_cited_report_with_no_model(admin: PgPool) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let t = keys.token("acme", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("Compare data retention rules and breach notification deadlines", json!({ "skill": "research" })) }),
    )
    .await;
    let task = &r["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    let plan = &artifact(task, "plan")["parts"][0]["data"]["subQueries"];
    assert_eq!(plan.as_array().unwrap().len(), 3, "{plan}");
    let cited = assert_citations_resolve(task, "report");
    let report = artifact(task, "report")["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(report.starts_with("# Research report"));
    assert!(report.contains("## Sources"));
    assert!(
        cited.contains(&"gdpr-art-33".to_string())
            && cited.contains(&"retention-policy".to_string()),
        "{cited:?}"
    );
    assert!(!cited.contains(&"office-plants".to_string()));
    assert_eq!(artifact(task, "report")["parts"][1]["data"]["cost"], "0");
    // No model, no ledger rows.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_ledger")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn research_with_a_model_reports_verified_citations_and_its_cost(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "5", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0.5", "1.5").await;
    sqlx::query("UPDATE tenants SET warn_at_percent = 65 WHERE id = 'acme'")
        .execute(&admin)
        .await
        .unwrap();
    let server = ModelServer::start(Mode::Canned, (1200, 300)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 256),
    )
    .await;
    let t = keys.token_for("acme", "carol", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("What are the rules on erasure and breaches?", json!({})) }),
    )
    .await;
    let task = &r["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    assert_eq!(server.count(), 2, "plan + synthesis");
    assert_eq!(
        artifact(task, "plan")["parts"][0]["data"]["subQueries"],
        json!(["personal data erasure", "breach notification deadline"])
    );
    assert_citations_resolve(task, "report");
    let report = artifact(task, "report")["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        report.contains("## Findings") && report.contains("## Sources"),
        "{report}"
    );

    // Each call: 1200 in × 0.5/1K + 300 out × 1.5/1K = 0.6 + 0.45 = 1.05; two calls = 2.1.
    assert_eq!(task["metadata"]["cost"], "2.1");
    assert_eq!(artifact(task, "report")["parts"][1]["data"]["cost"], "2.1");
    let (rows, cost, input, output): (i64, Decimal, i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(cost), sum(input_tokens)::bigint, sum(output_tokens)::bigint FROM usage_ledger \
          WHERE tenant_id = 'acme' AND user_id = 'carol' AND model = 'm1' AND task_id = $1::uuid AND NOT estimated",
    )
    .bind(task["id"].as_str().unwrap())
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        (rows, cost, input, output),
        (2, Decimal::new(21, 1), 2400, 600)
    );
    let (spent, reserved): (Decimal, Decimal) =
        sqlx::query_as("SELECT spent, reserved FROM budget_periods WHERE tenant_id = 'acme'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!((spent, reserved), (Decimal::new(21, 1), Decimal::ZERO));

    // The user sees it through the MCP usage tool, and operators in /metrics.
    let s = app
        .session(&keys.token_for("acme", "carol", &["usage:read"]))
        .await;
    let usage = s.call_ok("usage", json!({})).await;
    assert_eq!(usage["spent"], "2.1");
    assert_eq!(usage["userSpent"], "2.1");
    assert_eq!(usage["remaining"], "2.9");
    assert_eq!(usage["byModel"][0]["inputTokens"], 2400);
    let text = app.metrics().await;
    assert!(
        text.contains("paddock_budget_spent{tenant=\"acme\",currency=\"USD\"} 2.1"),
        "{text}"
    );
    assert!(
        text.contains("paddock_budget_remaining{tenant=\"acme\",currency=\"USD\"} 2.9"),
        "{text}"
    );
    // What each model cost, for the tenant dashboard; and the tenant's own warning threshold, for the alert.
    assert!(
        text.contains(
            "paddock_model_spend_total{tenant=\"acme\",model=\"m1\",currency=\"USD\"} 2.1"
        ),
        "{text}"
    );
    assert_eq!(usage["warnAtPercent"], 65);
    assert!(
        text.contains("paddock_budget_warn_percent{tenant=\"acme\"} 65"),
        "{text}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn answers_citing_unretrieved_documents_are_corrected(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "5", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0", "0").await;
    let server = ModelServer::start(Mode::CitesUnknown, (10, 10)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 64),
    )
    .await;
    let t = keys.token("acme", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    let task = &r["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    assert_eq!(server.count(), 2, "one answer and one bounded correction");
    let answer = artifact(task, "answer");
    assert_eq!(
        answer["parts"][1]["data"]["removedCitations"],
        json!(["not-a-retrieved-doc"])
    );
    assert!(
        !answer["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("not-a-retrieved-doc")
    );
    assert_citations_resolve(task, "answer");
}

#[sqlx::test(migrations = "../migrations")]
async fn models_outside_the_allow_list_are_refused_before_any_call(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "5", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0", "0").await;
    let server = ModelServer::start(Mode::Canned, (10, 10)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 64),
    )
    .await;
    let t = keys.token("acme", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "model": "gpt-9" })) }),
    )
    .await;
    assert_eq!(r["task"]["status"]["state"], "TASK_STATE_REJECTED");
    assert_eq!(r["task"]["metadata"]["reason"], "model_not_allowed");
    assert_eq!(
        r["task"]["status"]["message"]["metadata"]["reason"],
        "model_not_allowed"
    );
    // Allowed but without a price: a cost that cannot be budgeted is refused too.
    set_tenant(&admin, "acme", "5", &["m1", "m2"], false).await;
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "model": "m2" })) }),
    )
    .await;
    assert_eq!(r["task"]["metadata"]["reason"], "model_not_priced");
    assert_eq!(server.count(), 0);
    // The runtime's own model when the tenant does not allow it: extractive if the tenant permits that.
    set_tenant(&admin, "acme", "5", &[], true).await;
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    assert_eq!(r["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(r["task"]["metadata"]["model"], "extractive");
    assert_eq!(server.count(), 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failing_model_degrades_to_extractive_or_fails_with_a_reason(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "5", &["m1"], true).await;
    set_price(&admin, "acme", "m1", "1", "1").await;
    let server = ModelServer::start(Mode::Fails, (10, 10)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 64),
    )
    .await;
    let t = keys.token("acme", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    let task = &r["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    let data = &artifact(task, "answer")["parts"][1]["data"];
    assert_eq!(data["degraded"], true);
    assert!(
        data["degradedReason"].as_str().unwrap().contains("500"),
        "{data}"
    );
    assert_citations_resolve(task, "answer");
    assert_eq!(server.count(), 2, "one retry, bounded");

    set_tenant(&admin, "acme", "5", &["m1"], false).await;
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    assert_eq!(r["task"]["status"]["state"], "TASK_STATE_FAILED");
    assert_eq!(r["task"]["metadata"]["reason"], "model_unavailable");
    // Failed calls never reached a model that billed: nothing charged, nothing held.
    let (spent, reserved): (Decimal, Decimal) =
        sqlx::query_as("SELECT spent, reserved FROM budget_periods WHERE tenant_id = 'acme'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!((spent, reserved), (Decimal::ZERO, Decimal::ZERO));
    let released: i64 =
        sqlx::query_scalar("SELECT count(*) FROM budget_reservations WHERE state = 'released'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(released, 4);
}

// ---- budgets ------------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn an_empty_budget_refuses_the_call_and_charges_nothing(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "0", &["m1"], true).await;
    set_price(&admin, "acme", "m1", "0.001", "0.002").await;
    let server = ModelServer::start(Mode::Canned, (10, 10)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 64),
    )
    .await;
    let t = keys.token("acme", RUN);
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "skill": "rag" })) }),
    )
    .await;
    let task = &r["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED", "{task}");
    assert_eq!(task["metadata"]["reason"], "budget_exceeded");
    assert_eq!(
        task["status"]["message"]["metadata"]["reason"],
        "budget_exceeded"
    );
    assert!(
        task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("budget")
    );
    assert_eq!(server.count(), 0);
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM budget_reservations")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(held, 0);
    let text = app.metrics().await;
    assert!(
        text.contains("paddock_budget_rejections_total{tenant=\"acme\"} 1"),
        "{text}"
    );
}

/// 50 tasks at once against a budget that fits exactly 10 calls: no overspend, the refused tasks say why,
/// and the ledger sums to the recorded spend.
/// Task states in the database, as (state, count).
async fn task_states(admin: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT state, count(*) FROM tasks GROUP BY state ORDER BY state")
        .fetch_all(admin)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn tasks_beyond_the_replica_cap_wait_their_turn(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "10", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0", "0").await;
    let server = ModelServer::start(Mode::Slow(3000), (10, 10)).await;
    let keys = keys();
    // Waiting tasks keep their lease: the last ones wait longer than its lifetime and still complete.
    let settings = A2aSettings {
        max_running_tasks: 2,
        lease_ttl: Duration::from_secs(2),
        ..fast_settings()
    };
    let llm = openai_llm(&server.url, "m1", Duration::from_secs(20), 100);
    let app = a2a_app(&admin, &keys, settings, llm).await;
    // The replica's background work, lease sweeper included, as the server runs it.
    let background = tokio::spawn(paddock_runtime::a2a::background(app.state.clone()));
    let t = keys.token("acme", RUN);
    let starts = (0..5).map(|_| start(&app, &t, "erasure", json!({ "skill": "rag" })));
    let ids = futures::future::join_all(starts).await;

    // Two run; the other three wait, still submitted, until a slot frees.
    let started = std::time::Instant::now();
    loop {
        let states = task_states(&admin).await;
        if states == [("submitted".to_owned(), 3), ("working".to_owned(), 2)] {
            let text = app.metrics().await;
            for line in ["paddock_a2a_tasks_running 2", "paddock_a2a_tasks_waiting 3"] {
                assert!(text.lines().any(|l| l == line), "no {line:?} in {text}");
            }
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "expected 2 working and 3 submitted, got {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A waiting task can be canceled; it never reaches the model.
    let waiting: String = sqlx::query_scalar(
        "SELECT id::text FROM tasks WHERE state = 'submitted' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    ok(&app, &t, "CancelTask", json!({ "id": waiting })).await;

    for id in &ids {
        let task = wait_terminal(&app, &t, id).await;
        let want = if *id == waiting {
            "TASK_STATE_CANCELED"
        } else {
            "TASK_STATE_COMPLETED"
        };
        assert_eq!(task["status"]["state"], want, "{task}");
    }
    wait_idle(&app).await;
    background.abort();
    assert_eq!(server.max_in_flight(), 2, "never more than the cap at once");
    assert_eq!(server.count(), 4, "one model call per completed task");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_draining_replica_hands_its_waiting_tasks_over_and_fails_what_outlives_the_drain(
    admin: PgPool,
) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "10", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0.001", "0.002").await;
    // A runs one task at a time, against a model that never answers; B's model answers at once.
    let stalls = ModelServer::start(Mode::Stalls, (10, 10)).await;
    let answers = ModelServer::start(Mode::Canned, (10, 10)).await;
    let keys = keys();
    let llm = |url: &str| openai_llm(url, "m1", Duration::from_secs(60), 100);
    let a_settings = A2aSettings {
        max_running_tasks: 1,
        ..fast_settings()
    };
    let a = a2a_app(&admin, &keys, a_settings, llm(&stalls.url)).await;
    let b = a2a_app(&admin, &keys, fast_settings(), llm(&answers.url)).await;
    // Only B sweeps, so whatever A gives up can only end up on B.
    let b_background = tokio::spawn(paddock_runtime::a2a::background(b.state.clone()));
    let t = keys.token("acme", RUN);
    let rag = json!({ "skill": "rag" });
    let running = start(&a, &t, "erasure", rag.clone()).await;
    while stalls.count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = [
        start(&a, &t, "breach", rag.clone()).await,
        start(&a, &t, "breach notification", rag.clone()).await,
    ];
    // Waiting tasks on a live replica are its own: B's sweeps take nothing for a lease's lifetime.
    tokio::time::sleep(fast_settings().lease_ttl + Duration::from_millis(500)).await;
    assert_eq!(
        task_states(&admin).await,
        [("submitted".to_owned(), 2), ("working".to_owned(), 1)]
    );
    assert_eq!(answers.count(), 0);

    // A shuts down, giving its running task one second.
    let began = tokio::time::Instant::now();
    let drain = tokio::spawn({
        let state = a.state.clone();
        async move { worker::drain(&state, began + Duration::from_secs(1)).await }
    });
    while !a.state.a2a.is_draining() {
        tokio::task::yield_now().await;
    }
    // A task sent to A while it drains is accepted and handed over too; a blocking send is answered at once
    // with the state the task is in, rather than held through the drain.
    let sent = ok(
        &a,
        &t,
        "SendMessage",
        json!({ "message": message("erasure of personal data", rag.clone()) }),
    )
    .await;
    assert_eq!(
        sent["task"]["status"]["state"], "TASK_STATE_SUBMITTED",
        "{sent}"
    );
    let late = sent["task"]["id"].as_str().unwrap().to_owned();
    drain.await.unwrap();
    let drained_in = began.elapsed();
    assert!(
        drained_in < fast_settings().lease_ttl,
        "the drain ends at its deadline ({drained_in:?}), not when leases run out"
    );

    // The task that outlived the drain is already failed, with its own reason, and its reservation charged.
    let task = ok(&a, &t, "GetTask", json!({ "id": running })).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED", "{task}");
    assert_eq!(task["metadata"]["reason"], "replica_shutdown");
    let (reserved, estimated): (Decimal, bool) = sqlx::query_as(
        "SELECT (SELECT reserved FROM budget_periods WHERE tenant_id = 'acme'), \
                (SELECT bool_and(estimated) FROM usage_ledger WHERE task_id = $1::uuid)",
    )
    .bind(&running)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!((reserved, estimated), (Decimal::ZERO, true));

    // The others never started on A; B adopts and completes them.
    for id in waiting.iter().chain([&late]) {
        let task = wait_terminal(&b, &t, id).await;
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    }
    assert_eq!(stalls.count(), 1, "A started nothing after the drain began");
    assert_eq!(answers.count(), 3);
    wait_idle(&b).await;
    b_background.abort();
    // Each replica counts what it did.
    for (app, lines) in [
        (
            &a,
            [
                r#"paddock_a2a_tasks_ended_total{state="failed",reason="replica_shutdown"} 1"#,
                r#"paddock_a2a_tasks_handed_over_total{direction="handed_back"} 3"#,
            ],
        ),
        (
            &b,
            [
                r#"paddock_a2a_tasks_ended_total{state="completed",reason=""} 3"#,
                r#"paddock_a2a_tasks_handed_over_total{direction="adopted"} 3"#,
            ],
        ),
    ] {
        let text = app.metrics().await;
        for line in lines {
            assert!(text.lines().any(|l| l == line), "no {line:?} in {text}");
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_tasks_never_overspend_the_budget(admin: PgPool) {
    setup(&admin).await;
    // Only output is priced, and every call reports the full output cap, so estimate == actual == 0.1 per call.
    set_tenant(&admin, "acme", "1.0", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0", "1").await;
    let server = ModelServer::start(Mode::Slow(100), (500, 100)).await;
    let keys = keys();
    let llm = || openai_llm(&server.url, "m1", Duration::from_secs(20), 100);
    // Two replicas on one database share the budget. Each runs 25 tasks at once, so each gets the runtime's
    // default pool size (16): with 8, a status poll once waited 30 s for a connection on a loaded machine.
    let replica = || async {
        let pool = login_pool_of(&admin, "paddock_runtime", 16).await;
        a2a_app_on(pool, &keys, fast_settings(), llm()).await
    };
    let a = replica().await;
    let b = replica().await;
    let t = keys.token("acme", RUN);
    let mut ids = Vec::new();
    let starts = (0..50).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let t = t.clone();
        async move { start(app, &t, "erasure", json!({ "skill": "rag" })).await }
    });
    ids.extend(futures::future::join_all(starts).await);
    let mut completed = 0;
    let mut refused = 0;
    for id in &ids {
        let task = wait_terminal(&a, &t, id).await;
        match task["status"]["state"].as_str().unwrap() {
            "TASK_STATE_COMPLETED" => completed += 1,
            "TASK_STATE_FAILED" => {
                assert_eq!(task["metadata"]["reason"], "budget_exceeded", "{task}");
                refused += 1;
            }
            other => panic!("unexpected state {other}: {task}"),
        }
    }
    wait_idle(&a).await;
    wait_idle(&b).await;
    assert_eq!(completed, 10, "exactly the calls the budget fits");
    assert_eq!(refused, 40);
    assert_eq!(server.count(), 10);
    let (spent, reserved): (Decimal, Decimal) =
        sqlx::query_as("SELECT spent, reserved FROM budget_periods WHERE tenant_id = 'acme'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(spent <= Decimal::ONE, "spent {spent}");
    assert_eq!(spent, Decimal::ONE);
    assert_eq!(reserved, Decimal::ZERO);
    let ledger: Decimal = sqlx::query_scalar(
        "SELECT COALESCE(sum(cost), 0) FROM usage_ledger WHERE tenant_id = 'acme'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(ledger, spent);
    let task_costs: Decimal =
        sqlx::query_scalar("SELECT sum(cost) FROM tasks WHERE tenant_id = 'acme'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(task_costs, spent);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_task_budget_caps_its_own_spend(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "100", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0", "1").await;
    let server = ModelServer::start(Mode::Canned, (10, 100)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 100),
    )
    .await;
    let t = keys.token("acme", RUN);
    // research makes two calls of up to 0.1 each; a 0.15 cap lets only the first through.
    let r = ok(
        &app,
        &t,
        "SendMessage",
        json!({ "message": message("erasure", json!({ "budget": "0.15" })) }),
    )
    .await;
    assert_eq!(r["task"]["status"]["state"], "TASK_STATE_FAILED");
    assert_eq!(r["task"]["metadata"]["reason"], "budget_exceeded");
    assert_eq!(r["task"]["metadata"]["cost"], "0.1");
    assert_eq!(server.count(), 1);
    assert_eq!(
        fails(
            &app,
            &t,
            "SendMessage",
            json!({ "message": message("q", json!({ "budget": "-1" })) })
        )
        .await["code"],
        -32602
    );
}

// ---- cancellation -------------------------------------------------------------------------------------------

/// Cancel while a step is running (search, reading, or the model call): the final state is canceled in every
/// one of 50 runs, and nothing the workflow produces afterwards lands on the task.
#[sqlx::test(migrations = "../migrations")]
async fn cancel_while_a_step_runs_always_ends_canceled(admin: PgPool) {
    setup(&admin).await;
    set_tenant(&admin, "acme", "100", &["m1"], false).await;
    set_price(&admin, "acme", "m1", "0", "0.001").await;
    // The model takes 300 ms, so every cancel below lands while the workflow is still running.
    let server = ModelServer::start(Mode::Slow(300), (10, 10)).await;
    let keys = keys();
    let app = a2a_app(
        &admin,
        &keys,
        fast_settings(),
        openai_llm(&server.url, "m1", Duration::from_secs(10), 64),
    )
    .await;
    let t = keys.token("acme", RUN);
    for run in 0..50u64 {
        let id = start(&app, &t, "erasure", json!({ "skill": "rag" })).await;
        // Vary the moment of the cancel across the workflow's steps, the model call included.
        tokio::time::sleep(Duration::from_millis(run % 10 * 15)).await;
        let canceled = ok(&app, &t, "CancelTask", json!({ "id": id })).await;
        assert_eq!(
            canceled["status"]["state"], "TASK_STATE_CANCELED",
            "run {run}"
        );
        // Let the workflow run to its end (it finishes the model call it started), then look again.
        wait_idle(&app).await;
        let task = ok(&app, &t, "GetTask", json!({ "id": id })).await;
        assert_eq!(
            task["status"]["state"], "TASK_STATE_CANCELED",
            "run {run}: {task}"
        );
        assert!(
            task["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["artifactId"] != "answer"),
            "run {run}"
        );
        // The cancel is the last event: no artifact or status after it.
        let (kind, payload): (String, Value) =
            sqlx::query_as("SELECT kind, payload FROM task_events WHERE task_id = $1::uuid ORDER BY seq DESC LIMIT 1")
                .bind(&id)
                .fetch_one(&admin)
                .await
                .unwrap();
        assert_eq!(
            (kind.as_str(), &payload["state"]),
            ("status", &json!("canceled")),
            "run {run}"
        );
    }
    let canceled: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE state = 'canceled'")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(canceled, 50);
    // Model calls that ran are paid for; nothing is left reserved.
    let (spent, reserved): (Decimal, Decimal) =
        sqlx::query_as("SELECT spent, reserved FROM budget_periods WHERE tenant_id = 'acme'")
            .fetch_one(&admin)
            .await
            .unwrap_or((Decimal::ZERO, Decimal::ZERO));
    assert_eq!(reserved, Decimal::ZERO);
    let ledger: Decimal = sqlx::query_scalar("SELECT COALESCE(sum(cost), 0) FROM usage_ledger")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(ledger, spent);
}

// ---- leases -------------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn the_sweeper_fails_tasks_whose_replica_stopped_and_charges_held_reservations(
    admin: PgPool,
) {
    setup(&admin).await;
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    // A task some dead replica was running, with a reservation it never settled.
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO tasks (tenant_id, id, context_id, user_id, skill, state, input, last_seq, lease_owner, lease_expires_at) \
         VALUES ('acme', $1, 'c', 'alice', 'rag', 'working', '{\"messageId\":\"m\",\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"q\"}]}', 3, 'dead-replica', now() - interval '1 second')",
    )
    .bind(id)
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO budget_periods (tenant_id, period_start, reserved) VALUES ('acme', paddock_budget_period(), 0.25)",
    )
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO budget_reservations (tenant_id, id, period_start, task_id, user_id, model, amount, est_input_tokens, est_output_tokens) \
         VALUES ('acme', gen_random_uuid(), paddock_budget_period(), $1, 'alice', 'm1', 0.25, 100, 50)",
    )
    .bind(id)
    .execute(&admin)
    .await
    .unwrap();
    // A healthy task with a live lease is left alone.
    let live = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO tasks (tenant_id, id, context_id, user_id, skill, state, input, lease_owner, lease_expires_at) \
         VALUES ('acme', $1, 'c', 'alice', 'rag', 'working', '{}', 'live-replica', now() + interval '1 minute')",
    )
    .bind(live)
    .execute(&admin)
    .await
    .unwrap();

    assert_eq!(worker::sweep(&app.state).await.unwrap(), 1);
    let t = keys.token("acme", RUN);
    let task = ok(&app, &t, "GetTask", json!({ "id": id })).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_FAILED");
    assert_eq!(task["metadata"]["reason"], "lease_expired");
    assert!(
        task["status"]["message"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("stopped")
    );
    let (spent, reserved): (Decimal, Decimal) =
        sqlx::query_as("SELECT spent, reserved FROM budget_periods WHERE tenant_id = 'acme'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!((spent, reserved), (Decimal::new(25, 2), Decimal::ZERO));
    let estimated: bool =
        sqlx::query_scalar("SELECT estimated FROM usage_ledger WHERE task_id = $1")
            .bind(id)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(estimated);
    let live_state: String = sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1")
        .bind(live)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(live_state, "working");
    assert_eq!(worker::sweep(&app.state).await.unwrap(), 0);
}

// ---- the usage ledger through the usage tool ------------------------------------------------------------------

/// `usage` with `by` sums the tenant's ledger per key over a span of days, across the tenant's users and never
/// another tenant's rows; a span it cannot read is a tool error naming the argument.
#[sqlx::test(migrations = "../migrations")]
async fn the_usage_ledger_is_summed_per_key_for_the_callers_tenant_only(admin: PgPool) {
    provision_tenant(&admin, "acme", 60000, 10000).await;
    provision_tenant(&admin, "globex", 60000, 10000).await;
    let task = uuid::Uuid::new_v4();
    for (tenant, user, model, task_id, input, output, cost, at) in [
        (
            "acme",
            "carol",
            "m1",
            Some(task),
            1000,
            100,
            "1.5",
            "2026-11-03 10:00Z",
        ),
        (
            "acme",
            "carol",
            "m2",
            Some(task),
            500,
            50,
            "0.25",
            "2026-11-03 23:59Z",
        ),
        (
            "acme",
            "dave",
            "m1",
            None,
            10,
            5,
            "0.01",
            "2026-11-04 00:00Z",
        ),
        ("acme", "dave", "m1", None, 10, 5, "7", "2026-11-30 12:00Z"),
        (
            "globex",
            "eve",
            "m1",
            None,
            99,
            99,
            "99",
            "2026-11-03 12:00Z",
        ),
    ] {
        sqlx::query(
            "INSERT INTO usage_ledger (tenant_id, user_id, model, task_id, input_tokens, output_tokens, cost, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8::timestamptz)",
        )
        .bind(tenant)
        .bind(user)
        .bind(model)
        .bind(task_id)
        .bind(input as i64)
        .bind(output as i64)
        .bind(cost)
        .bind(at)
        .execute(&admin)
        .await
        .unwrap();
    }
    let keys = keys();
    let app = extractive_app(&admin, &keys).await;
    let s = app
        .session(&keys.token_for("acme", "carol", &["usage:read"]))
        .await;
    let span = |by: &str| json!({"by": by, "since": "2026-11-01", "until": "2026-11-30"});

    let by_user = s.call_ok("usage", span("user")).await;
    assert_eq!(
        by_user["ledger"],
        json!({"by": "user", "since": "2026-11-01", "until": "2026-11-30", "truncated": false, "rows": [
            {"key": "carol", "calls": 2, "inputTokens": 1500, "outputTokens": 150, "cost": "1.75"},
            {"key": "dave", "calls": 1, "inputTokens": 10, "outputTokens": 5, "cost": "0.01"},
        ]}),
        "the 30th is outside the span, and globex's row is not acme's"
    );
    let by_model = s.call_ok("usage", span("model")).await;
    assert_eq!(by_model["ledger"]["rows"][0]["key"], "m1");
    assert_eq!(by_model["ledger"]["rows"][0]["cost"], "1.51");
    let by_task = s.call_ok("usage", span("task")).await;
    assert_eq!(by_task["ledger"]["rows"][0]["key"], task.to_string());
    assert_eq!(
        by_task["ledger"]["rows"][1]["key"], "",
        "calls outside any task"
    );
    let by_day = s.call_ok("usage", span("day")).await;
    let days: Vec<&str> = by_day["ledger"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2026-11-03", "2026-11-04"], "UTC days");

    // Without `by` the report is as before, with no ledger.
    assert!(s.call_ok("usage", json!({})).await.get("ledger").is_none());

    for (args, message) in [
        (
            json!({"by": "user", "since": "Nov 1"}),
            "since must be a date",
        ),
        (
            json!({"by": "user", "until": "2026-02-30"}),
            "until must be a date",
        ),
        (
            json!({"by": "user", "since": "2026-11-02", "until": "2026-11-01"}),
            "since must be before until",
        ),
        (
            json!({"by": "user", "since": "2024-01-01", "until": "2026-01-01"}),
            "at most 366 days",
        ),
        (json!({"since": "2026-11-01"}), "since and until need by"),
    ] {
        let r = s.call("usage", args.clone()).await;
        assert_eq!(r["isError"], true, "{args}: {r}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(message), "{args}: {text}");
    }
    let r = s
        .request(
            "tools/call",
            json!({"name": "usage", "arguments": {"by": "tenant"}}),
        )
        .await;
    assert!(
        r.get("error").is_some() || r["result"]["isError"] == true,
        "an unknown key is refused: {r}"
    );
}
