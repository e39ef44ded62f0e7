//! Leader election on a real API server: of several candidates exactly one holds the Lease at
//! any moment, a standby takes over only after the holder stops renewing (or releases), and the
//! Lease records the hand-over.
//!
//! Needs a cluster (`KUBECONFIG`), so it is ignored by default:
//!
//! ```sh
//! eval "$(e2e/controlplane/up.sh)"
//! cargo test -p paddock-operator --test cluster_leader -- --ignored
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Namespace};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use paddock_operator::leader::{Elector, LeaseSettings};

fn fast(namespace: &str, lease: &str, identity: &str) -> LeaseSettings {
    LeaseSettings {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
        ..LeaseSettings::new(namespace, lease, identity)
    }
}

async fn namespace(client: &Client) -> String {
    let name = format!("leader-{:08x}", rand::random::<u32>());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

async fn holder(client: &Client, ns: &str, lease: &str) -> Option<String> {
    let l: Lease = Api::namespaced(client.clone(), ns)
        .get(lease)
        .await
        .unwrap();
    l.spec.and_then(|s| s.holder_identity)
}

#[tokio::test]
#[ignore = "needs a cluster: eval \"$(e2e/controlplane/up.sh)\""]
async fn one_leader_at_a_time_and_a_standby_takes_over() {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG points at a cluster");
    let ns = namespace(&client).await;

    // Three candidates race for a Lease that does not exist yet: exactly one wins.
    let leaders = Arc::new(AtomicUsize::new(0));
    let mut electors: Vec<Elector> = (0..3)
        .map(|i| Elector::new(client.clone(), fast(&ns, "op", &format!("c{i}"))))
        .collect();
    let mut won = Vec::new();
    for _ in 0..5 {
        for (i, e) in electors.iter_mut().enumerate() {
            if e.try_acquire_or_renew().await.unwrap() && !won.contains(&i) {
                won.push(i);
            }
        }
    }
    assert_eq!(
        won.len(),
        1,
        "exactly one candidate holds the Lease: {won:?}"
    );
    let first = won[0];
    assert_eq!(
        holder(&client, &ns, "op").await.as_deref(),
        Some(format!("c{first}").as_str())
    );

    // While the leader renews, standbys keep waiting, however long they try.
    let standby = (first + 1) % 3;
    let until = Instant::now() + Duration::from_secs(6);
    let mut last_renewal = Instant::now();
    while Instant::now() < until {
        assert!(
            electors[first].try_acquire_or_renew().await.unwrap(),
            "the leader renews"
        );
        last_renewal = Instant::now();
        assert!(
            !electors[standby].try_acquire_or_renew().await.unwrap(),
            "a standby never takes a live Lease"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The leader stops renewing (a crash): a standby takes over once the lease duration has
    // passed since the last renewal, not before.
    let mut e = electors.remove(standby);
    e.acquire().await;
    let waited = last_renewal.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "took over after {waited:?}, before the lease ran out"
    );
    assert!(waited < Duration::from_secs(12), "took {waited:?}");
    assert_eq!(
        holder(&client, &ns, "op").await.as_deref(),
        Some(format!("c{standby}").as_str())
    );
    let lease: Lease = Api::namespaced(client.clone(), &ns)
        .get("op")
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));

    // The old leader, back, finds it lost the Lease: `hold` returns at once.
    let mut old = Elector::new(client.clone(), fast(&ns, "op", &format!("c{first}")));
    tokio::time::timeout(Duration::from_secs(3), old.hold())
        .await
        .expect("hold gives up when another candidate leads");

    // Releasing hands over immediately.
    e.release().await;
    let mut next = Elector::new(client.clone(), fast(&ns, "op", "c9"));
    let t = Instant::now();
    next.acquire().await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a released Lease is taken at once ({:?})",
        t.elapsed()
    );

    // Concurrent candidates in loops: never two leaders at once.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (client, ns, leaders, stop) =
            (client.clone(), ns.clone(), leaders.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut e = Elector::new(client, fast(&ns, "race", &format!("r{i}")));
            let mut max_seen = 0;
            while !stop.load(Ordering::Relaxed) {
                if e.try_acquire_or_renew().await.unwrap_or(false) {
                    let now = leaders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen = max_seen.max(now);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    leaders.fetch_sub(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            max_seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let max: Vec<usize> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(max.iter().all(|m| *m <= 1), "two leaders at once: {max:?}");
    assert_eq!(
        max.iter().filter(|m| **m == 1).count(),
        1,
        "one candidate led the whole time: {max:?}"
    );

    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
