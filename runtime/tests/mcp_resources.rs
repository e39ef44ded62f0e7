//! A tenant's documents as MCP resources, in both eras: listed a page at a time, read by URI, named by a
//! template; row-level security decides what exists, and the scope is the document tools' own.

use paddock_runtime::mcp::{document_id, document_uri};
use paddock_testkit::{a2a::seed, prelude::*};
use serde_json::{Value, json};
use sqlx::PgPool;

/// One request in the handshake era (through a session) or the stateless era → (HTTP status, JSON-RPC answer).
async fn ask(
    app: &TestApp,
    token: &str,
    stateless: bool,
    method: &str,
    params: Value,
) -> (u16, Value) {
    let r = if stateless {
        app.stateless(token).post(method, params).await
    } else {
        let s = app.session(token).await;
        s.post(json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}))
            .await
    };
    let body = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), body)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenants_documents_are_listed_and_read_as_resources_in_both_eras(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "globex", 6000, 1000).await;
    seed(
        &admin,
        "acme",
        &[
            (
                "gdpr-art-17",
                "Right to erasure",
                "Erase personal data without undue delay.",
            ),
            (
                "q3/plan 2026?",
                "",
                "Plans with a slash, a space and a question mark in the id.",
            ),
        ],
    )
    .await;
    seed(
        &admin,
        "globex",
        &[("globex-only", "Globex", "Not acme's.")],
    )
    .await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let t = keys.token("acme", RO);

    for stateless in [false, true] {
        let (status, r) = ask(&app, &t, stateless, "resources/list", json!({})).await;
        assert_eq!(status, 200, "{r}");
        let listed = r["result"]["resources"].as_array().unwrap().clone();
        let uris: Vec<&str> = listed.iter().filter_map(|x| x["uri"].as_str()).collect();
        assert_eq!(
            uris,
            [document_uri("gdpr-art-17"), document_uri("q3/plan 2026?")],
            "only acme's documents, in id order"
        );
        assert_eq!(listed[0]["name"], "gdpr-art-17");
        assert_eq!(listed[0]["title"], "Right to erasure");
        assert_eq!(listed[0]["mimeType"], "text/plain");
        assert!(listed[0]["annotations"]["lastModified"].is_string());
        assert!(
            listed[1].get("title").is_none(),
            "an empty title is left out"
        );
        assert!(r["result"].get("nextCursor").is_none());
        if stateless {
            // A tenant's listing may be cached by its caller only, and not at all for long.
            assert_eq!(r["result"]["cacheScope"], "private");
            assert_eq!(r["result"]["ttlMs"], 0);
        }

        for (id, text) in [
            ("gdpr-art-17", "Erase personal data without undue delay."),
            (
                "q3/plan 2026?",
                "Plans with a slash, a space and a question mark in the id.",
            ),
        ] {
            let uri = document_uri(id);
            let (status, r) = ask(&app, &t, stateless, "resources/read", json!({"uri": uri})).await;
            assert_eq!(status, 200, "{r}");
            let c = &r["result"]["contents"][0];
            assert_eq!(
                (c["uri"].as_str(), c["text"].as_str()),
                (Some(uri.as_str()), Some(text))
            );
            assert_eq!(c["mimeType"], "text/plain");
        }

        let (_, r) = ask(&app, &t, stateless, "resources/templates/list", json!({})).await;
        assert_eq!(
            r["result"]["resourceTemplates"][0]["uriTemplate"],
            "paddock://documents/{id}"
        );
    }
    assert_eq!(
        document_id(&document_uri("q3/plan 2026?")).as_deref(),
        Some("q3/plan 2026?")
    );
}

/// Another tenant's document id answers exactly as a missing one does, so ids cannot be probed across tenants.
#[sqlx::test(migrations = "../migrations")]
async fn another_tenants_document_reads_as_not_found(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    provision_tenant(&admin, "globex", 6000, 1000).await;
    seed(&admin, "acme", &[("acme-secret", "Secret", "acme's plans")]).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let globex = keys.token(
        "globex",
        &["documents:read", "documents:write", "usage:read"],
    );

    for stateless in [false, true] {
        let mut errors = Vec::new();
        for id in ["acme-secret", "never-existed"] {
            let uri = document_uri(id);
            let (status, r) = ask(
                &app,
                &globex,
                stateless,
                "resources/read",
                json!({"uri": uri}),
            )
            .await;
            assert_eq!(status, if stateless { 400 } else { 200 }, "{r}");
            let e = &r["error"];
            assert_eq!(
                (e["code"].as_i64(), e["data"]["uri"].as_str()),
                (Some(-32602), Some(uri.as_str()))
            );
            errors.push(e["message"].clone());
            assert!(!r.to_string().contains("acme's plans"));
        }
        assert_eq!(
            errors[0], errors[1],
            "the same answer for another tenant's id and a missing one"
        );
        // A URI that is not one of our documents is not found either.
        let (_, r) = ask(
            &app,
            &globex,
            stateless,
            "resources/read",
            json!({"uri": "file:///etc/passwd"}),
        )
        .await;
        assert_eq!(r["error"]["code"], -32602);
        let (_, r) = ask(&app, &globex, stateless, "resources/list", json!({})).await;
        assert_eq!(r["result"]["resources"], json!([]));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn resources_need_the_document_read_scope(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    seed(&admin, "acme", &[("a", "A", "text")]).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let usage_only = keys.token("acme", &["usage:read"]);
    for stateless in [false, true] {
        for (method, params) in [
            ("resources/list", json!({})),
            ("resources/read", json!({"uri": document_uri("a")})),
            ("resources/templates/list", json!({})),
        ] {
            let r = if stateless {
                app.stateless(&usage_only).post(method, params).await
            } else {
                let s = app.session(&usage_only).await;
                s.post(json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}))
                    .await
            };
            assert_eq!(r.status, 403, "{method}");
            let challenge = r.header("www-authenticate").unwrap();
            assert!(challenge.contains("documents:read"), "{challenge}");
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn resources_are_listed_a_page_at_a_time(admin: PgPool) {
    provision_tenant(&admin, "acme", 6000, 1000).await;
    let ids: Vec<String> = (0..130).map(|i| format!("doc-{i:03}")).collect();
    let docs: Vec<(&str, &str, &str)> = ids.iter().map(|id| (id.as_str(), "", "text")).collect();
    seed(&admin, "acme", &docs).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let c = app.stateless(&keys.token("acme", RO));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let r = c.request("resources/list", params).await["result"].clone();
        let page = r["resources"].as_array().unwrap();
        assert!(page.len() <= 100);
        seen.extend(page.iter().map(|x| x["name"].as_str().unwrap().to_owned()));
        match r["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every document once, in order");

    let r = c
        .post("resources/list", json!({"cursor": "not a cursor"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_i64()),
        (400, Some(-32602))
    );
}
