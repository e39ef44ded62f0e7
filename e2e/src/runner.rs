//! The runner of the scenario binaries (`harness = false` in Cargo.toml).
//!
//! libtest runs every `#[test]` on its own, with no place to set up a cluster, an operator and a
//! database once and tear them down after the last test. This runner does that: it parses the
//! arguments `cargo test` passes (filters, `--skip`, `--exact`, `--list`, `--ignored`,
//! `--include-ignored`, `--test-threads`), starts the shared [`Env`] only when a scenario will
//! run, runs the scenarios as tasks on one Tokio runtime, stops the `Env` and prints libtest's
//! summary line.
//!
//! Every scenario is "ignored" in libtest's sense: a plain `cargo test --workspace` lists them as
//! ignored and needs no cluster; `scripts/e2e.sh` passes `--include-ignored` with the cluster's
//! environment set.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::FutureExt;

use crate::env::{Env, EnvOptions};

/// What a scenario returns.
pub type ScenarioFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One named scenario.
pub struct Trial {
    pub name: &'static str,
    pub run: fn(Arc<Env>) -> ScenarioFuture,
    /// Needs what only the local mode has (host processes, loopback servers the runtime can
    /// reach); reported as ignored in the in-cluster mode.
    pub local_only: bool,
}

/// `trial!(tenant_lifecycle)` names a scenario `async fn tenant_lifecycle(env: Arc<Env>)`;
/// `trial!(name, local_only)` marks one that only the local mode can run.
#[macro_export]
macro_rules! trial {
    ($f:ident) => {
        $crate::runner::Trial {
            name: stringify!($f),
            run: |env| Box::pin($f(env)),
            local_only: false,
        }
    };
    ($f:ident, local_only) => {
        $crate::runner::Trial {
            name: stringify!($f),
            run: |env| Box::pin($f(env)),
            local_only: true,
        }
    };
}

#[derive(Debug, Default)]
struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    run_ignored: bool,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--ignored" | "--include-ignored" => args.run_ignored = true,
            "--exact" => args.exact = true,
            "--list" => args.list = true,
            "--test-threads" => {
                let v = value("--test-threads")?;
                args.threads = Some(
                    v.parse()
                        .map_err(|_| format!("--test-threads: not a number: {v}"))?,
                );
            }
            // Accepted for compatibility with libtest; output is never captured here.
            "--nocapture" | "--show-output" | "-q" | "--quiet" => {}
            "--skip" => args.skip.push(value("--skip")?),
            "--color" | "--format" | "--logfile" => {
                value(&flag)?;
            }
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ => args.filters.push(a),
        }
    }
    Ok(args)
}

fn selected(args: &Args, name: &str) -> bool {
    let matches = |f: &String| {
        if args.exact {
            name == f
        } else {
            name.contains(f.as_str())
        }
    };
    (args.filters.is_empty() || args.filters.iter().any(matches)) && !args.skip.iter().any(matches)
}

/// Runs `trials` (at most `default_threads` at once unless `--test-threads` says otherwise)
/// against one [`Env`] started with `options`, then exits the process with libtest's status.
pub fn main(trials: Vec<Trial>, options: EnvOptions, default_threads: usize) -> ! {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(101);
        }
    };
    let (chosen, skipped): (Vec<_>, Vec<_>) =
        trials.into_iter().partition(|t| selected(&args, t.name));
    if args.list {
        for t in &chosen {
            println!("{}: test", t.name);
        }
        std::process::exit(0);
    }
    println!("\nrunning {} tests", chosen.len());
    if !args.run_ignored {
        for t in &chosen {
            println!(
                "test {} ... ignored, needs a cluster (run scripts/e2e.sh)",
                t.name
            );
        }
        println!(
            "\ntest result: ok. 0 passed; 0 failed; {} ignored; 0 measured; {} filtered out; finished in 0.00s\n",
            chosen.len(),
            skipped.len()
        );
        std::process::exit(0);
    }
    let in_cluster = std::env::var("PADDOCK_E2E_MODE").as_deref() == Ok("in-cluster");
    let (chosen, local_only): (Vec<_>, Vec<_>) = chosen
        .into_iter()
        .partition(|t| !(in_cluster && t.local_only));
    for t in &local_only {
        println!(
            "test {} ... ignored, runs in the local mode only (scripts/e2e.sh)",
            t.name
        );
    }
    let ignored = local_only.len();
    if chosen.is_empty() {
        println!(
            "\ntest result: ok. 0 passed; 0 failed; {ignored} ignored; 0 measured; {} filtered out; finished in 0.00s\n",
            skipped.len()
        );
        std::process::exit(0);
    }

    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime starts");
    let threads = args.threads.unwrap_or(default_threads).max(1);
    let total = chosen.len();
    let (passed, failures) = rt.block_on(async move {
        let env = match Env::start(options).await {
            Ok(env) => Arc::new(env),
            Err(e) => {
                println!("error: failed to set up the end-to-end environment: {e:#}");
                return (
                    0,
                    chosen
                        .iter()
                        .map(|t| (t.name, "environment setup failed".to_owned()))
                        .collect(),
                );
            }
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(threads));
        let mut tasks = Vec::new();
        for t in chosen {
            let env = env.clone();
            let limit = limit.clone();
            tasks.push((
                t.name,
                tokio::spawn(async move {
                    let _permit = limit
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    let start = Instant::now();
                    eprintln!("[{}] started", t.name);
                    let res = AssertUnwindSafe(tokio::time::timeout(
                        env.scenario_timeout(),
                        (t.run)(env.clone()),
                    ))
                    .catch_unwind()
                    .await;
                    let res = match res {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err(anyhow::anyhow!(
                            "timed out after {:?}",
                            env.scenario_timeout()
                        )),
                        Err(panic) => Err(anyhow::anyhow!("panicked: {}", panic_message(&panic))),
                    };
                    let secs = start.elapsed().as_secs_f64();
                    match &res {
                        Ok(()) => println!("test {} ... ok ({secs:.1}s)", t.name),
                        Err(_) => println!("test {} ... FAILED ({secs:.1}s)", t.name),
                    }
                    res
                }),
            ));
        }
        let mut passed = 0;
        let mut failures = Vec::new();
        for (name, task) in tasks {
            match task.await {
                Ok(Ok(())) => passed += 1,
                Ok(Err(e)) => failures.push((name, format!("{e:#}"))),
                Err(e) => failures.push((name, format!("task failed: {e}"))),
            }
        }
        let failed = !failures.is_empty();
        match Arc::try_unwrap(env) {
            Ok(env) => env.stop(failed).await,
            Err(_) => println!(
                "warning: a scenario still holds the environment; it is not stopped cleanly"
            ),
        }
        (passed, failures)
    });
    rt.shutdown_timeout(Duration::from_secs(5));

    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (name, msg) in &failures {
            println!("---- {name} ----\n{msg}\n");
        }
        println!("failures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    let status = if failures.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {status}. {passed} passed; {} failed; {ignored} ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        total - passed,
        skipped.len(),
        started.elapsed().as_secs_f64()
    );
    std::process::exit(if failures.is_empty() { 0 } else { 101 });
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(filters: &[&str], skip: &[&str], exact: bool) -> Args {
        Args {
            filters: filters.iter().map(|s| s.to_string()).collect(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            exact,
            ..Args::default()
        }
    }

    #[test]
    fn filters_and_skips_select_like_libtest() {
        let all = args(&[], &[], false);
        assert!(selected(&all, "tenant_lifecycle"));
        let some = args(&["tenant"], &["retain"], false);
        assert!(selected(&some, "tenant_lifecycle"));
        assert!(
            !selected(&some, "tenant_retain_keeps_rows"),
            "--skip wins over a matching filter"
        );
        assert!(!selected(&some, "agent_task_completes"));
        let exact = args(&["tenant"], &[], true);
        assert!(
            !selected(&exact, "tenant_lifecycle"),
            "--exact needs the whole name"
        );
        let skip_exact = args(&[], &["tenant_lifecycle"], true);
        assert!(
            !selected(&skip_exact, "tenant_lifecycle")
                && selected(&skip_exact, "tenant_lifecycle_2")
        );
    }
}
