//! The AgentTask controller's A2A client against the real runtime's A2A endpoint: the token the
//! operator mints, the metadata it sends, and the 1.0 answers it reads (submit, poll to a
//! terminal state, cancel, unknown task).
//!
//! Needs PostgreSQL (`scripts/postgres.sh start`), like the other database tests.

use std::time::{Duration, Instant};

use paddock_operator::{
    agenttask::{
        self, TASK_SCOPES,
        a2a::{A2aClient, A2aError, TaskView},
    },
    crd::{AgentTask, agenttask::TaskState},
    toolserver::build,
};
use paddock_testkit::operator::world::World;
use sqlx::PgPool;

fn task(skill: &str, input: &str) -> AgentTask {
    serde_yaml::from_str(&format!(
        "apiVersion: paddock.dev/v1alpha1\nkind: AgentTask\nmetadata: {{name: t, namespace: ns}}\n\
         spec: {{toolServerRef: docs, skill: {skill}, input: {input:?}, budget: '0.50', timeout: 2m}}\n"
    ))
    .unwrap()
}

async fn poll_until_terminal(client: &A2aClient<'_>, id: &str) -> TaskView {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = client.get_task(id).await.expect("GetTask");
        if view.state.is_terminal() || Instant::now() > deadline {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_task_is_submitted_followed_and_canceled_over_the_runtimes_a2a(superuser: PgPool) {
    let world = World::new(superuser, "a", "  tools: [search, get_document]\n").await;
    sqlx::query(
        "INSERT INTO documents (tenant_id, id, title, content, content_hash)
         VALUES ($1, 'msa', 'Master services agreement', 'Either party may terminate this agreement with ninety days written notice.', 'h1')",
    )
    .bind(&world.name)
    .execute(&world.admin.pool)
    .await
    .unwrap();
    let runtime = world.start_runtime().await;
    let http = reqwest::Client::new();
    let audience = build::resource_url(&world.toolserver);
    let token = world
        .dev
        .mint(
            &world.name,
            &audience,
            "agenttask:ns/t",
            &TASK_SCOPES,
            Duration::from_secs(300),
        )
        .unwrap();
    let client = A2aClient::new(&http, &runtime.base_url(), token);

    // Submit as the controller does: message id = the object's uid, metadata from the spec.
    let rag = task(
        "rag",
        "What notice period applies to terminating the agreement?",
    );
    let submitted = client
        .send_message(
            "0f6b0e58-2f43-4a3c-9d8e-6c1f7b2a9e01",
            &rag.spec.input,
            agenttask::submission_metadata(&rag.spec, Duration::from_secs(120)),
        )
        .await
        .expect("SendMessage");
    assert!(
        !submitted.id.is_empty() && submitted.context_id.is_some(),
        "{submitted:?}"
    );
    let done = poll_until_terminal(&client, &submitted.id).await;
    assert_eq!(done.state, TaskState::Completed, "{done:?}");
    assert!(
        !done.artifacts.is_empty(),
        "a completed rag task has an answer artifact: {done:?}"
    );
    assert!(
        done.artifacts.iter().any(|a| a
            .preview
            .as_deref()
            .is_some_and(|p| p.contains("ninety days"))),
        "{:?}",
        done.artifacts
    );
    let cost = done.cost.as_deref().expect("the runtime reports the cost");
    assert_eq!(
        cost.parse::<f64>().unwrap(),
        0.0,
        "extractive answers cost nothing"
    );

    // A running research task is canceled (or, if it already finished, reported as such).
    let research = task("research", "Summarise every termination clause.");
    let started = client
        .send_message(
            "0f6b0e58-2f43-4a3c-9d8e-6c1f7b2a9e02",
            &research.spec.input,
            agenttask::submission_metadata(&research.spec, Duration::from_secs(120)),
        )
        .await
        .expect("SendMessage");
    match client.cancel_task(&started.id).await {
        Ok(view) => assert_eq!(view.state, TaskState::Canceled, "{view:?}"),
        Err(A2aError::Rpc { code: -32002, .. }) => {
            assert!(
                client
                    .get_task(&started.id)
                    .await
                    .unwrap()
                    .state
                    .is_terminal()
            );
        }
        Err(e) => panic!("CancelTask: {e}"),
    }

    // An unknown task is the A2A TaskNotFound error, which the controller records as failed.
    match client
        .get_task("7d0c4a9e-0000-4000-8000-000000000000")
        .await
    {
        Err(A2aError::Rpc { code: -32001, .. }) => {}
        other => panic!("expected TaskNotFound, got {other:?}"),
    }

    // A token without the documents:read the skills need is refused before any work.
    let narrow = world
        .dev
        .mint(
            &world.name,
            &audience,
            "agenttask:ns/t",
            &["tasks:run"],
            Duration::from_secs(60),
        )
        .unwrap();
    let refused = A2aClient::new(&http, &runtime.base_url(), narrow)
        .send_message(
            "0f6b0e58-2f43-4a3c-9d8e-6c1f7b2a9e03",
            "x",
            agenttask::submission_metadata(&rag.spec, Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, A2aError::Status(403)), "{refused:?}");

    runtime.task.abort();
    world.finish().await;
}

/// A tenant over its rate limit for a moment must not lose its AgentTasks: the runtime's 429
/// carries a JSON-RPC error object, and the client must still report it as transient (the
/// controller retries with backoff) rather than as a refusal (the task would end rejected).
#[sqlx::test(migrations = false)]
async fn a_rate_limited_submission_is_transient_not_a_refusal(superuser: PgPool) {
    let world = World::new(superuser, "rl", "  tools: [search, get_document]\n").await;
    sqlx::query("UPDATE tenants SET requests_per_minute = 1, burst = 1 WHERE id = $1")
        .bind(&world.name)
        .execute(&world.admin.pool)
        .await
        .unwrap();
    let runtime = world.start_runtime().await;
    let http = reqwest::Client::new();
    let token = world
        .dev
        .mint(
            &world.name,
            &build::resource_url(&world.toolserver),
            "agenttask:ns/t",
            &TASK_SCOPES,
            Duration::from_secs(300),
        )
        .unwrap();
    let client = A2aClient::new(&http, &runtime.base_url(), token);
    let rag = task("rag", "What notice period applies?");
    let mut outcomes = Vec::new();
    for i in 0..3 {
        outcomes.push(
            client
                .send_message(
                    &format!("0f6b0e58-2f43-4a3c-9d8e-6c1f7b2a9e1{i}"),
                    &rag.spec.input,
                    agenttask::submission_metadata(&rag.spec, Duration::from_secs(120)),
                )
                .await,
        );
    }
    let limited: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        !limited.is_empty(),
        "three submissions under a burst of 1 were all admitted: {outcomes:?}"
    );
    for e in limited {
        assert!(
            matches!(e, A2aError::Status(429)) && e.is_transient(),
            "a rate-limited submission must be a transient 429, not {e:?}"
        );
    }
    world.finish().await;
}
