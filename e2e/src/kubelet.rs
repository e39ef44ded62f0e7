//! A stand-in kubelet for ToolServer Deployments: kwok marks their pods `Running` but runs
//! nothing, so this module runs `paddock-runtime` on the host with exactly what the operator
//! rendered into the Deployment.
//!
//! For each Deployment the operator owns (`app.kubernetes.io/component=toolserver`), it reads the
//! runtime container and:
//! - writes every mounted ConfigMap and Secret (and emptyDir) into a private directory, at the
//!   container's mount path below that directory;
//! - resolves the container's `env` (plain values, Secret/ConfigMap keys, the downward API) and
//!   `envFrom`;
//! - runs the local `paddock-runtime` binary with the container's arguments, in a clean
//!   environment holding only those variables (plus `PATH` and the proxy below).
//!
//! The test-only differences, all explicit here:
//! 1. the config file's `listen` and `metrics_listen` addresses become `127.0.0.1:<free port>`
//!    (pods have their own network namespace; processes on one host do not); the metrics port
//!    and the pod template's labels are kept, for a scenario's Prometheus to scrape as the
//!    chart's PodMonitor would;
//! 2. mount paths are moved under the private directory, and every occurrence of a mount path
//!    in arguments, env values and mounted files is rewritten to match (the host has one `/etc`);
//! 3. the process gets `HTTP_PROXY` pointing at [`crate::proxy`], its stand-in for cluster DNS;
//! 4. a `preStop` sleep is skipped: it waits for the pod to leave its Service's endpoints, and
//!    here the route is removed before the stop begins.
//!
//! Stopping is as a kubelet stops a pod: SIGTERM, then SIGKILL once the template's
//! `terminationGracePeriodSeconds` (30 s when unset) has passed.
//!
//! When the pod template changes (the operator rolls pods on a config change), a runtime with the
//! new contents starts while the old one stops; when the Deployment goes (or scales to 0), it is
//! stopped.
//! Once it answers `/healthz`, its Service is routed to it in the proxy.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Container, EnvVar, KeyToPath, Secret, Service, Volume},
    },
};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{process::Command, sync::Mutex};

use crate::{process::Proc, proxy::Routes};

/// Label selector of the Deployments the operator renders for ToolServers.
pub const TOOLSERVER_DEPLOYMENTS: &str =
    "app.kubernetes.io/component=toolserver,app.kubernetes.io/managed-by=paddock-operator";
/// Label on a ToolServer's children naming the ToolServer.
const TOOLSERVER_LABEL: &str = "paddock.dev/toolserver";

/// A runtime started for one Deployment.
pub struct LocalRuntime {
    pub namespace: String,
    pub deployment: String,
    pub port: u16,
    /// The port of its `/metrics` (`metrics_listen`).
    pub metrics_port: u16,
    /// The pod template's labels (`paddock.dev/toolserver`, `paddock.dev/tenant`, ...).
    pub labels: BTreeMap<String, String>,
    /// Service routed to it, once found.
    pub service: Option<(String, u16)>,
    fingerprint: String,
    /// The pod template's termination grace period.
    grace: Duration,
    proc: Proc,
}

/// Shared view of the runtimes this kubelet runs, for scenarios that want to inspect or stop them.
#[derive(Clone, Default)]
pub struct Runtimes(Arc<Mutex<BTreeMap<(String, String), LocalRuntime>>>);

/// Pod templates whose runtime failed to start, with when: retried after [`RETRY_AFTER`], as a
/// kubelet backs off a crashing container, instead of on every Deployment status update.
type Failed = Arc<Mutex<HashMap<(String, String), (String, std::time::Instant)>>>;
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl Runtimes {
    /// The local port of the runtime serving Deployment `name` in `namespace`.
    pub async fn port(&self, namespace: &str, name: &str) -> Option<u16> {
        self.0
            .lock()
            .await
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|r| r.port)
    }

    /// Every runtime running now, as (namespace, Deployment, metrics port, pod template labels).
    pub async fn metrics_targets(&self) -> Vec<(String, String, u16, BTreeMap<String, String>)> {
        self.0
            .lock()
            .await
            .values()
            .map(|r| {
                (
                    r.namespace.clone(),
                    r.deployment.clone(),
                    r.metrics_port,
                    r.labels.clone(),
                )
            })
            .collect()
    }

    /// Log tails of every runtime, for failure reports.
    pub async fn log_tails(&self, lines: usize) -> String {
        let map = self.0.lock().await;
        map.values()
            .map(|r| {
                format!(
                    "--- runtime {}/{} ({}) ---\n{}",
                    r.namespace,
                    r.deployment,
                    r.proc.log_path().display(),
                    r.proc.log_tail(lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn stop_all(&self) {
        let mut map = self.0.lock().await;
        for (_, mut r) in std::mem::take(&mut *map) {
            r.proc.stop(Duration::from_secs(5)).await;
        }
    }
}

pub struct Kubelet {
    pub runtimes: Runtimes,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Ctx {
    client: Client,
    runtime_bin: PathBuf,
    work_dir: PathBuf,
    routes: Routes,
    proxy_url: String,
    runtimes: Runtimes,
    failed: Failed,
}

impl Kubelet {
    /// Starts watching ToolServer Deployments in every namespace.
    pub fn start(
        client: Client,
        runtime_bin: PathBuf,
        work_dir: PathBuf,
        routes: Routes,
        proxy_url: String,
    ) -> Self {
        let runtimes = Runtimes::default();
        let ctx = Ctx {
            client,
            runtime_bin,
            work_dir,
            routes,
            proxy_url,
            runtimes: runtimes.clone(),
            failed: Failed::default(),
        };
        let task = tokio::spawn(run(ctx));
        Self { runtimes, task }
    }
}

async fn run(ctx: Ctx) {
    let api: Api<Deployment> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().labels(TOOLSERVER_DEPLOYMENTS);
    let mut events = watcher(api, cfg).default_backoff().boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d))) => {
                    if let Err(e) = sync(&ctx, &d).await {
                        eprintln!("[kubelet] {}/{}: {e:#}", d.namespace().unwrap_or_default(), d.name_any());
                    }
                }
                Some(Ok(watcher::Event::Delete(d))) => {
                    stop(&ctx, &d.namespace().unwrap_or_default(), &d.name_any()).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => eprintln!("[kubelet] watch error: {e}"),
                None => return,
            },
            _ = tick.tick() => {
                route_pending(&ctx).await;
                retry_failed(&ctx).await;
            }
        }
    }
}

async fn stop(ctx: &Ctx, namespace: &str, name: &str) {
    ctx.failed
        .lock()
        .await
        .remove(&(namespace.to_owned(), name.to_owned()));
    let removed = ctx
        .runtimes
        .0
        .lock()
        .await
        .remove(&(namespace.to_owned(), name.to_owned()));
    if let Some(mut r) = removed {
        if let Some((svc, _)) = &r.service {
            ctx.routes.remove(namespace, svc);
        }
        // The process drains on its own time, as a terminating pod does, while the watch goes on
        // (and a replacement starts beside it, as in a rolling update).
        let what = format!("{namespace}/{name}");
        tokio::spawn(async move {
            r.proc.stop(r.grace).await;
            eprintln!("[kubelet] stopped the runtime of {what}");
        });
    }
}

/// Brings the local runtime of one Deployment in line with its spec.
async fn sync(ctx: &Ctx, d: &Deployment) -> anyhow::Result<()> {
    let namespace = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("deployment has no spec"))?;
    if d.metadata.deletion_timestamp.is_some() || spec.replicas == Some(0) {
        stop(ctx, &namespace, &name).await;
        return Ok(());
    }
    let fingerprint =
        serde_json::to_string(&spec.template).context("failed to serialise the pod template")?;
    let key = (namespace.clone(), name.clone());
    if ctx
        .runtimes
        .0
        .lock()
        .await
        .get(&key)
        .is_some_and(|r| r.fingerprint == fingerprint)
    {
        return Ok(());
    }
    if ctx
        .failed
        .lock()
        .await
        .get(&key)
        .is_some_and(|(f, at)| *f == fingerprint && at.elapsed() < RETRY_AFTER)
    {
        return Ok(());
    }
    stop(ctx, &namespace, &name).await;
    let rt = match start(ctx, d, fingerprint.clone()).await {
        Ok(rt) => rt,
        Err(e) => {
            ctx.failed
                .lock()
                .await
                .insert(key, (fingerprint, std::time::Instant::now()));
            return Err(e);
        }
    };
    ctx.failed.lock().await.remove(&key);
    eprintln!(
        "[kubelet] runtime of {namespace}/{name} serves on 127.0.0.1:{}",
        rt.port
    );
    ctx.runtimes.0.lock().await.insert(key, rt);
    route_pending(ctx).await;
    Ok(())
}

/// Starts again the runtimes that failed more than [`RETRY_AFTER`] ago.
async fn retry_failed(ctx: &Ctx) {
    let due: Vec<(String, String)> = ctx
        .failed
        .lock()
        .await
        .iter()
        .filter(|(_, (_, at))| at.elapsed() >= RETRY_AFTER)
        .map(|(k, _)| k.clone())
        .collect();
    for (namespace, name) in due {
        match Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
            .get_opt(&name)
            .await
        {
            Ok(Some(d)) => {
                if let Err(e) = sync(ctx, &d).await {
                    eprintln!("[kubelet] {namespace}/{name}: {e:#}");
                }
            }
            Ok(None) => {
                ctx.failed.lock().await.remove(&(namespace, name));
            }
            Err(_) => {}
        }
    }
}

/// Routes the Service of every runtime that has none yet (the Service may come after the
/// Deployment).
async fn route_pending(ctx: &Ctx) {
    let mut map = ctx.runtimes.0.lock().await;
    for r in map.values_mut().filter(|r| r.service.is_none()) {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &r.namespace);
        let Ok(deploy) = Api::<Deployment>::namespaced(ctx.client.clone(), &r.namespace)
            .get(&r.deployment)
            .await
        else {
            continue;
        };
        let ts = deploy
            .labels()
            .get(TOOLSERVER_LABEL)
            .cloned()
            .unwrap_or_else(|| r.deployment.clone());
        let Ok(list) = api
            .list(&kube::api::ListParams::default().labels(&format!("{TOOLSERVER_LABEL}={ts}")))
            .await
        else {
            continue;
        };
        if let Some(svc) = list.items.first() {
            let port = svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .and_then(|p| p.first())
                .map_or(80, |p| p.port);
            let svc_name = svc.name_any();
            ctx.routes.add(&r.namespace, &svc_name, port as u16, r.port);
            eprintln!(
                "[kubelet] routed service {}/{svc_name}:{port} to 127.0.0.1:{}",
                r.namespace, r.port
            );
            r.service = Some((svc_name, port as u16));
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Mount path → local directory (or file, for `subPath` mounts).
struct Rewrites(Vec<(String, String)>);

impl Rewrites {
    /// One left-to-right pass; at each position the longest matching mount path wins (the list
    /// is sorted longest first), so `/etc/paddock/jwks` beats `/etc/paddock`.
    fn apply(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        'scan: while i < s.len() {
            for (from, to) in &self.0 {
                if s[i..].starts_with(from.as_str()) {
                    let after = s[i + from.len()..].chars().next();
                    if after
                        .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
                    {
                        out.push_str(to);
                        i += from.len();
                        continue 'scan;
                    }
                }
            }
            let c = s[i..].chars().next().expect("i is on a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}

async fn start(ctx: &Ctx, d: &Deployment, fingerprint: String) -> anyhow::Result<LocalRuntime> {
    let namespace = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or_else(|| anyhow!("deployment has no pod spec"))?;
    let container: &Container = pod
        .containers
        .iter()
        .find(|c| c.name == "runtime")
        .or_else(|| pod.containers.first())
        .ok_or_else(|| anyhow!("pod template has no container"))?;
    let dir = ctx
        .work_dir
        .join("runtimes")
        .join(format!("{namespace}-{name}-{}", rand::random::<u32>()));
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;

    // Volumes, mounted under root.
    let volumes: HashMap<&str, &Volume> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut rewrites = Vec::new();
    let mut written = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let vol = volumes
            .get(m.name.as_str())
            .ok_or_else(|| anyhow!("volumeMount {} names no volume", m.name))?;
        let local = root.join(m.mount_path.trim_start_matches('/'));
        match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => {
                materialize(ctx, &namespace, vol, &local, &mut written).await?;
            }
            Some(sub) => {
                let scratch = dir.join("volumes").join(&m.name);
                materialize(ctx, &namespace, vol, &scratch, &mut Vec::new()).await?;
                let src = scratch.join(sub);
                if let Some(parent) = local.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::copy(&src, &local)
                    .with_context(|| format!("subPath {sub} of volume {} is missing", m.name))?;
                written.push(local.clone());
            }
        }
        rewrites.push((
            m.mount_path.trim_end_matches('/').to_owned(),
            local.to_string_lossy().into_owned(),
        ));
    }
    rewrites.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let rewrites = Rewrites(rewrites);
    for path in &written {
        if let Ok(text) = std::fs::read_to_string(path) {
            let new = rewrites.apply(&text);
            if new != text {
                std::fs::write(path, new)?;
            }
        }
    }

    // Environment.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace)
                .get(&r.name)
                .await?;
            let prefix = from.prefix.clone().unwrap_or_default();
            for (k, v) in cm.data.unwrap_or_default() {
                env.insert(format!("{prefix}{k}"), v);
            }
        }
        if let Some(r) = &from.secret_ref {
            let s = Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
                .get(&r.name)
                .await?;
            let prefix = from.prefix.clone().unwrap_or_default();
            for (k, v) in s.data.unwrap_or_default() {
                env.insert(format!("{prefix}{k}"), utf8(&v)?);
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = env_value(
            ctx,
            &namespace,
            &name,
            pod.service_account_name.as_deref(),
            var,
        )
        .await?;
        env.insert(var.name.clone(), rewrites.apply(&value));
    }

    // Command line: the image's entrypoint is the runtime binary.
    let mut args: Vec<String> = container
        .command
        .iter()
        .flatten()
        .skip(1)
        .cloned()
        .collect();
    args.extend(container.args.iter().flatten().cloned());
    let args: Vec<String> = args.iter().map(|a| rewrites.apply(a)).collect();

    // The listen addresses, in the config file.
    let config = config_path(&args, &env).ok_or_else(|| {
        anyhow!("the runtime container names no config file (--config or PADDOCK_CONFIG)")
    })?;
    let port = free_port()?;
    let metrics_port = free_port()?;
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("config file {config} is not mounted"))?;
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("config file {config} is not YAML"))?;
    let map = doc
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("config file {config} is not a mapping"))?;
    map.insert("listen".into(), format!("127.0.0.1:{port}").into());
    map.insert(
        "metrics_listen".into(),
        format!("127.0.0.1:{metrics_port}").into(),
    );
    std::fs::write(&config, serde_yaml::to_string(&doc)?)?;

    let mut cmd = Command::new(&ctx.runtime_bin);
    cmd.args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HTTP_PROXY", &ctx.proxy_url)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .envs(&env)
        .current_dir(&dir);
    let run_name = dir
        .file_name()
        .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
    let mut proc = Proc::spawn(&format!("runtime-{run_name}"), cmd, &ctx.work_dir)?;
    proc.wait_until_answers(
        &format!("http://127.0.0.1:{port}/healthz"),
        "the runtime",
        Duration::from_secs(30),
    )
    .await?;
    Ok(LocalRuntime {
        namespace,
        deployment: name,
        port,
        metrics_port,
        labels: d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
        service: None,
        fingerprint,
        grace: Duration::from_secs(
            pod.termination_grace_period_seconds
                .unwrap_or(30)
                .try_into()
                .unwrap_or(0),
        ),
        proc,
    })
}

fn config_path(args: &[String], env: &BTreeMap<String, String>) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(v.to_owned());
        }
    }
    env.get("PADDOCK_CONFIG").cloned()
}

fn utf8(b: &ByteString) -> anyhow::Result<String> {
    String::from_utf8(b.0.clone())
        .context("a Secret value used as an environment variable is not UTF-8")
}

async fn env_value(
    ctx: &Ctx,
    namespace: &str,
    pod_name: &str,
    sa: Option<&str>,
    var: &EnvVar,
) -> anyhow::Result<String> {
    if let Some(v) = &var.value {
        return Ok(v.clone());
    }
    let Some(from) = &var.value_from else {
        return Ok(String::new());
    };
    if let Some(r) = &from.secret_key_ref {
        let s = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
            .get(&r.name)
            .await
            .with_context(|| format!("env {}: secret {}", var.name, r.name))?;
        let v =
            s.data.unwrap_or_default().remove(&r.key).ok_or_else(|| {
                anyhow!("env {}: secret {} has no key {}", var.name, r.name, r.key)
            })?;
        return utf8(&v);
    }
    if let Some(r) = &from.config_map_key_ref {
        let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace)
            .get(&r.name)
            .await
            .with_context(|| format!("env {}: configmap {}", var.name, r.name))?;
        return cm.data.unwrap_or_default().remove(&r.key).ok_or_else(|| {
            anyhow!(
                "env {}: configmap {} has no key {}",
                var.name,
                r.name,
                r.key
            )
        });
    }
    if let Some(f) = &from.field_ref {
        return Ok(match f.field_path.as_str() {
            "metadata.name" => format!("{pod_name}-local"),
            "metadata.namespace" => namespace.to_owned(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
            "spec.nodeName" => "kwok-node-0".to_owned(),
            "spec.serviceAccountName" => sa.unwrap_or("default").to_owned(),
            other => bail!("env {}: unsupported fieldRef {other}", var.name),
        });
    }
    if from.resource_field_ref.is_some() {
        // Limits are not enforced on the host; an unset value lets the runtime pick its default.
        return Ok(String::new());
    }
    bail!("env {}: unsupported valueFrom", var.name)
}

/// Writes the files of `vol` into directory `dir`.
async fn materialize(
    ctx: &Ctx,
    namespace: &str,
    vol: &Volume,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(src) = &vol.config_map {
        let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace)
            .get(&src.name)
            .await
            .with_context(|| format!("volume {}: configmap {}", vol.name, src.name))?;
        write_items(dir, config_map_files(cm), src.items.as_deref(), written)?;
    } else if let Some(src) = &vol.secret {
        let name = src.secret_name.clone().unwrap_or_default();
        let s = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
            .get(&name)
            .await
            .with_context(|| format!("volume {}: secret {name}", vol.name))?;
        write_items(dir, secret_files(s), src.items.as_deref(), written)?;
    } else if vol.empty_dir.is_some() {
        // Nothing to write.
    } else if let Some(p) = &vol.projected {
        for source in p.sources.iter().flatten() {
            if let Some(src) = &source.config_map {
                let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace)
                    .get(&src.name)
                    .await?;
                write_items(dir, config_map_files(cm), src.items.as_deref(), written)?;
            } else if let Some(src) = &source.secret {
                let s = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
                    .get(&src.name)
                    .await?;
                write_items(dir, secret_files(s), src.items.as_deref(), written)?;
            } else {
                bail!("volume {}: unsupported projected source", vol.name);
            }
        }
    } else {
        bail!("volume {}: unsupported volume type", vol.name);
    }
    Ok(())
}

fn config_map_files(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    files.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    files
}

fn secret_files(s: Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn write_items(
    dir: &Path,
    files: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let chosen: Vec<(String, &Vec<u8>)> = match items {
        Some(items) => items
            .iter()
            .map(|i| {
                files
                    .get(&i.key)
                    .map(|v| (i.path.clone(), v))
                    .ok_or_else(|| anyhow!("key {} is missing", i.key))
            })
            .collect::<anyhow::Result<_>>()?,
        None => files.iter().map(|(k, v)| (k.clone(), v)).collect(),
    };
    for (rel, bytes) in chosen {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)
            .with_context(|| format!("failed to write {}", path.display()))?;
        written.push(path);
    }
    Ok(())
}
