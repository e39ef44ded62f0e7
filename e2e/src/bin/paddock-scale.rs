//! `paddock-scale`: the tenant-count benchmark (BENCHMARKS.md, "Thousands of tenants").
//!
//! On the local control plane, with one operator run as the chart's ServiceAccount, it keeps a
//! probe tenant with a ToolServer serving search, then for each N given: applies N Tenants, each
//! with its namespace, in one `kubectl apply`, and measures the time until all are Ready, the
//! operator's peak RSS and CPU seconds, PostgreSQL's roles, relations and database size, the
//! probe tenant's `hybrid_search` latency with the N present, a migration that touches every
//! partition (rolled back), and the time until all are deleted with their roles and partitions.
//! It prints one Markdown table. Run it through `scripts/e2e.sh --scale 100,1000`.
#![forbid(unsafe_code)]

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use paddock_e2e::{
    env::{Env, EnvOptions, Scope, random_suffix, scoped},
    manifests,
    steps::{connect, load_refund_policy, mint, ready_tenant_with_toolserver, search},
};

const OPERATOR: &str = "paddock-scale";
/// Searches per latency measurement.
const SEARCHES: usize = 200;
/// How long N Tenants may take to become Ready, or to go, before the run gives up.
const PATIENCE: Duration = Duration::from_secs(1800);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let counts = parse_counts()?;
    let env = Arc::new(
        Env::start(EnvOptions {
            shared_operator: false,
            scenario_timeout: Duration::from_secs(7200),
        })
        .await?,
    );
    let result = scoped(
        env.clone(),
        "scale",
        |s| async move { run(&s, &counts).await },
    )
    .await;
    let failed = result.is_err();
    match Arc::try_unwrap(env) {
        Ok(env) => env.stop(failed).await,
        Err(_) => eprintln!("warning: the environment is still shared; not stopping it"),
    }
    result
}

/// The tenant counts from the first argument, e.g. `100,1000`.
fn parse_counts() -> anyhow::Result<Vec<usize>> {
    let arg = std::env::args()
        .nth(1)
        .context("usage: paddock-scale N[,N...] (tenants to apply in each round)")?;
    arg.split(',')
        .map(|n| match n.trim().parse::<usize>() {
            Ok(n) if (1..=20_000).contains(&n) => Ok(n),
            _ => bail!("{n:?} is not a tenant count between 1 and 20000"),
        })
        .collect()
}

/// One round's measurements.
struct Round {
    tenants: usize,
    apply: Duration,
    ready: Duration,
    peak_rss_mib: f64,
    cpu_seconds: f64,
    catalog: Catalog,
    search: Latency,
    migration: Duration,
    deleted: Duration,
}

async fn run(s: &Scope, counts: &[usize]) -> anyhow::Result<()> {
    s.start_operator(OPERATOR).await?;
    let pid = s.operator_pid(OPERATOR).await?;
    let tenant = s.name("probe");
    let ns = s.namespace("probe").await?;
    let ts = ready_tenant_with_toolserver(s, &tenant, &ns, "docs").await?;
    load_refund_policy(s, &ts, &tenant).await?;
    let token = mint(s, &ts, &tenant, "documents:read").await?;
    let mcp = connect(s, &ts, &token).await?;
    let probe = async || -> anyhow::Result<Latency> {
        let mut took = Vec::with_capacity(SEARCHES);
        for i in 0..SEARCHES {
            let started = Instant::now();
            let hits = search(&mcp, &format!("refund receipt {}", i % 20)).await?;
            took.push(started.elapsed());
            ensure!(!hits.is_empty(), "the probe tenant's search found nothing");
        }
        Ok(Latency::of(took))
    };
    let base_catalog = Catalog::read(s).await?;
    let base_search = probe().await?;
    eprintln!(
        "[scale] with the probe tenant alone: {base_catalog:?}, search p50 {:.1} ms",
        base_search.p50_ms
    );

    let tenants = Api::<DynamicObject>::all_with(s.env.client.clone(), &tenant_resource());
    let mut rounds = Vec::new();
    for &n in counts {
        let run = format!("s{}", random_suffix(5));
        let selector = format!("paddock.dev/scale-run={run}");
        let cpu_before = cpu_seconds(pid)?;
        let mut peak = rss_mib(pid)?;
        let started = Instant::now();
        let out = s
            .env
            .kubectl
            .run(&["apply", "-f", "-"], Some(&manifests_for(&run, n)))
            .await?;
        ensure!(
            out.success,
            "kubectl apply of {n} Tenants failed: {}",
            out.stderr
        );
        let apply = started.elapsed();
        eprintln!(
            "[scale] {n} Tenants applied in {:.1} s",
            apply.as_secs_f64()
        );
        loop {
            let list = tenants
                .list(&ListParams::default().labels(&selector))
                .await?;
            let ready = list.items.iter().filter(|t| is_ready(t)).count();
            peak = peak.max(rss_mib(pid)?);
            if ready == n {
                break;
            }
            ensure!(
                started.elapsed() < PATIENCE,
                "{ready} of {n} Tenants Ready after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let ready = started.elapsed();
        let cpu = cpu_seconds(pid)? - cpu_before;
        eprintln!("[scale] {n} Tenants Ready in {:.1} s", ready.as_secs_f64());
        let catalog = Catalog::read(s).await?;
        let search = probe().await?;
        let migration = migration(s).await?;

        let started = Instant::now();
        for kind in ["tenants", "namespaces"] {
            let out = s
                .env
                .kubectl
                .run(&["delete", kind, "-l", &selector, "--wait=false"], None)
                .await?;
            ensure!(out.success, "kubectl delete {kind} failed: {}", out.stderr);
        }
        loop {
            let left = tenants
                .list(&ListParams::default().labels(&selector))
                .await?
                .items
                .len();
            let now = Catalog::read(s).await?;
            if left == 0
                && now.roles == base_catalog.roles
                && now.relations == base_catalog.relations
            {
                break;
            }
            ensure!(
                started.elapsed() < PATIENCE,
                "after {PATIENCE:?}, {left} Tenants are left and the catalog holds {now:?} (before: {base_catalog:?})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let deleted = started.elapsed();
        eprintln!("[scale] {n} Tenants gone in {:.1} s", deleted.as_secs_f64());
        rounds.push(Round {
            tenants: n,
            apply,
            ready,
            peak_rss_mib: peak,
            cpu_seconds: cpu,
            catalog,
            search,
            migration,
            deleted,
        });
    }
    println!("{}", table(&base_catalog, &base_search, &rounds));
    Ok(())
}

fn tenant_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("paddock.dev", "v1alpha1", "Tenant"))
}

fn is_ready(t: &DynamicObject) -> bool {
    t.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `n` namespaces and `n` Tenants, one owning each, labelled with the round.
fn manifests_for(run: &str, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let name = format!("{run}-{i}");
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    paddock.dev/scale-run: {run}\n---\n"
        );
        let tenant = manifests::tenant(&name, &[&name], "10.00", "Delete").replacen(
            &format!("  name: {name}\n"),
            &format!("  name: {name}\n  labels:\n    paddock.dev/scale-run: {run}\n"),
            1,
        );
        out.push_str(&tenant);
        out.push_str("---\n");
    }
    out
}

/// What PostgreSQL holds: roles, relations (tables, indexes, sequences, ...) and the database's size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Catalog {
    roles: i64,
    relations: i64,
    size_mib: f64,
}

impl Catalog {
    async fn read(s: &Scope) -> anyhow::Result<Self> {
        let (roles, relations, size): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_roles), (SELECT count(*) FROM pg_class), \
                    pg_database_size(current_database())",
        )
        .fetch_one(&s.env.db.pool)
        .await?;
        Ok(Self {
            roles,
            relations,
            size_mib: size as f64 / (1024.0 * 1024.0),
        })
    }
}

/// A migration that touches every tenant's partitions: an index on the documents of every
/// tenant and a column on the postings of every tenant, in one transaction, rolled back.
async fn migration(s: &Scope) -> anyhow::Result<Duration> {
    let mut tx = s.env.db.pool.begin().await?;
    let started = Instant::now();
    sqlx::query("CREATE INDEX scale_probe_idx ON documents (created_at)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("ALTER TABLE bm25_postings ADD COLUMN scale_probe integer NOT NULL DEFAULT 0")
        .execute(&mut *tx)
        .await?;
    let took = started.elapsed();
    tx.rollback().await?;
    Ok(took)
}

#[derive(Debug)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
}

impl Latency {
    fn of(mut took: Vec<Duration>) -> Self {
        took.sort();
        let at = |q: f64| {
            let i = ((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1;
            took[i].as_secs_f64() * 1000.0
        };
        Self {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}

/// The operator's resident set, from /proc.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("the operator's /proc status (has it exited?)")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status: the operator has exited (its log says why)")?;
    Ok(kib / 1024.0)
}

/// The operator's user + system CPU time so far, from /proc (clock ticks of 1/100 s, as Linux
/// reports them to user space).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .context("the operator's /proc stat (has it exited?)")?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime 14 and stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn table(base: &Catalog, base_search: &Latency, rounds: &[Round]) -> String {
    let mut out = format!(
        "Before each round: the probe tenant alone, {} roles, {} relations, {:.0} MiB; its search p50 {:.1} ms, p99 {:.1} ms.\n\n",
        base.roles, base.relations, base.size_mib, base_search.p50_ms, base_search.p99_ms
    );
    out.push_str(
        "| Tenants | apply s | all Ready s | Tenants/s | operator peak RSS MiB | operator CPU s | roles | relations | database MiB | search p50 / p99 ms | migration s | all gone s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rounds {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {} | {} | {:.0} | {:.1} / {:.1} | {:.2} | {:.1} |",
            r.tenants,
            r.apply.as_secs_f64(),
            r.ready.as_secs_f64(),
            r.tenants as f64 / r.ready.as_secs_f64(),
            r.peak_rss_mib,
            r.cpu_seconds,
            r.catalog.roles,
            r.catalog.relations,
            r.catalog.size_mib,
            r.search.p50_ms,
            r.search.p99_ms,
            r.migration.as_secs_f64(),
            r.deleted.as_secs_f64(),
        );
    }
    out
}
