//! The whole chain outside Kubernetes: the Tenant step provisions a role and a password, the
//! ToolServer step renders the runtime configuration, the real runtime starts from exactly
//! that file logged in as the tenant's role, and the operator's `Verified` self-check
//! completes an MCP `initialize` against it with a token from the development issuer.
//!
//! Needs PostgreSQL (`scripts/postgres.sh start`), like the other database tests.

use paddock_operator::{
    devissuer::DevIssuer,
    toolserver::{build, verify},
};
use paddock_testkit::operator::world::World;
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn the_self_check_initializes_against_a_runtime_started_from_the_rendered_config(
    superuser: PgPool,
) {
    let world = World::new(superuser, "v", "  tools: [search, get_document]\n").await;
    let runtime = world.start_runtime().await;
    let base = runtime.base_url();
    let http = reqwest::Client::new();
    let audience = build::resource_url(&world.toolserver);

    let ok = verify::initialize(&http, &world.dev, &base, &world.name, &audience)
        .await
        .expect("the self-check succeeds");
    assert!(ok.contains("initialize succeeded"), "{ok}");
    // The runtime recorded the session for this tenant (as the tenant's own role) and the
    // check ended it again.
    let (sessions, ended): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(ended_at) FROM mcp_sessions WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(&world.name)
    .bind(verify::OPERATOR_USER)
    .fetch_one(&world.admin.pool)
    .await
    .unwrap();
    assert_eq!((sessions, ended), (1, 1));

    // A token from another key, or for another audience, is refused: the check proves trust.
    let stranger = DevIssuer::generate("urn:paddock:dev-issuer");
    let err = verify::initialize(&http, &stranger, &base, &world.name, &audience)
        .await
        .unwrap_err();
    assert!(err.to_string().ends_with("HTTP 401"), "{err}");
    let err = verify::initialize(
        &http,
        &world.dev,
        &base,
        &world.name,
        "http://other.svc:8080/mcp",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().ends_with("HTTP 401"), "{err}");
    // Nothing listening: a clear message, no panic.
    runtime.task.abort();
    let _ = runtime.task.await;
    // (A fresh client: the old one would reuse its kept-alive connection.)
    let err = verify::initialize(
        &reqwest::Client::new(),
        &world.dev,
        &base,
        &world.name,
        &audience,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().ends_with("could not connect"), "{err}");
    world.finish().await;
}
