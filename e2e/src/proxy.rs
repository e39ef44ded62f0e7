//! The test-only stand-in for cluster DNS and kube-proxy: an HTTP forward proxy on loopback.
//!
//! kwok pods run nothing, and `http://docs.acme.svc:8080` resolves nowhere outside a cluster. The
//! harness starts the operator (and its own clients) with `HTTP_PROXY` pointing here, so they
//! call a ToolServer by its real Service URL, exactly as in a cluster. This proxy looks the
//! Service up in its routes (filled by [`crate::kubelet`] when it starts a local runtime for that
//! ToolServer) and forwards the request to `127.0.0.1:<port>`, streaming both bodies (SSE works).
//! A host without a route gets `502` with a message naming it, so a wrong URL fails visibly.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;

/// Service authorities (`name.ns.svc:port`) → local ports.
#[derive(Clone, Default)]
pub struct Routes(Arc<RwLock<HashMap<String, u16>>>);

impl Routes {
    /// Routes Service `name` in `namespace`, port `port`, to `127.0.0.1:local_port`, under every
    /// name a pod could use for it.
    pub fn add(&self, namespace: &str, name: &str, port: u16, local_port: u16) {
        let mut map = self.0.write().expect("routes lock");
        for host in service_hosts(namespace, name) {
            map.insert(format!("{host}:{port}"), local_port);
            if port == 80 {
                map.insert(host, local_port);
            }
        }
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        let hosts = service_hosts(namespace, name);
        self.0.write().expect("routes lock").retain(|k, _| {
            !hosts
                .iter()
                .any(|h| k == h || k.starts_with(&format!("{h}:")))
        });
    }

    pub fn lookup(&self, authority: &str) -> Option<u16> {
        self.0
            .read()
            .expect("routes lock")
            .get(&authority.to_ascii_lowercase())
            .copied()
    }
}

fn service_hosts(namespace: &str, name: &str) -> Vec<String> {
    vec![
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
    ]
}

#[derive(Clone)]
struct ProxyState {
    routes: Routes,
    client: reqwest::Client,
    /// One line per request: method, URL, status (and the body of a refusal), for failure
    /// reports.
    log: Option<Arc<std::sync::Mutex<std::fs::File>>>,
}

impl ProxyState {
    fn record(&self, line: String) {
        if let Some(f) = &self.log {
            use std::io::Write;
            let now = chrono_like_now();
            let _ = writeln!(f.lock().expect("proxy log lock"), "{now} {line}");
        }
    }
}

/// Seconds since the epoch with milliseconds (the logs of the operator and runtimes carry UTC
/// timestamps; this is enough to line them up).
fn chrono_like_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// A running proxy; dropped with the runtime it was spawned on.
pub struct Proxy {
    pub addr: SocketAddr,
    pub routes: Routes,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts the proxy; with `log`, every request is recorded there.
    pub async fn start(routes: Routes, log: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = match log {
            Some(p) => Some(Arc::new(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ))),
            None => None,
        };
        let state = ProxyState {
            routes: routes.clone(),
            client: reqwest::Client::builder().no_proxy().build()?,
            log,
        };
        let app = Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, routes, task })
    }

    /// `http://127.0.0.1:<port>`, for `HTTP_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client that reaches Services the way the operator does: through this proxy.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(self.url()).expect("a valid proxy URL"))
            .build()
            .expect("a reqwest client builds")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_BY_HOP.contains(&k.as_str()) && k != header::HOST {
            to.append(HeaderName::from(k), v.clone());
        }
    }
}

fn bad_gateway(msg: String) -> Response {
    (StatusCode::BAD_GATEWAY, msg).into_response()
}

async fn forward(State(st): State<ProxyState>, req: Request) -> Response {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let Some(authority) = authority else {
        return bad_gateway("e2e proxy: request names no host".into());
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let method = req.method().clone();
    let Some(port) = st.routes.lookup(&authority) else {
        st.record(format!("{method} http://{authority}{path} -> 502 no route"));
        return bad_gateway(format!(
            "e2e proxy: no route for {authority} (no local runtime serves that Service)"
        ));
    };
    let url = format!("http://127.0.0.1:{port}{path}");
    let (parts, body) = req.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let upstream = st
        .client
        .request(parts.method, &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match upstream {
        Ok(resp) => {
            let status = resp.status();
            let mut out = Response::builder().status(status);
            copy_headers(
                resp.headers(),
                out.headers_mut().expect("a fresh builder has headers"),
            );
            if status.is_client_error() || status.is_server_error() {
                // Refusals are small: keep the body for the log.
                let body = resp.bytes().await.unwrap_or_default();
                let text: String = String::from_utf8_lossy(&body).chars().take(400).collect();
                st.record(format!(
                    "{method} http://{authority}{path} -> {} {text}",
                    status.as_u16()
                ));
                return out
                    .body(Body::from(body))
                    .unwrap_or_else(|e| bad_gateway(format!("e2e proxy: {e}")));
            }
            st.record(format!(
                "{method} http://{authority}{path} -> {}",
                status.as_u16()
            ));
            let stream = resp.bytes_stream().map_err(std::io::Error::other);
            out.body(Body::from_stream(stream))
                .unwrap_or_else(|e| bad_gateway(format!("e2e proxy: {e}")))
        }
        Err(e) => {
            st.record(format!("{method} http://{authority}{path} -> 502 {e}"));
            bad_gateway(format!(
                "e2e proxy: {authority} → 127.0.0.1:{port} failed: {e}"
            ))
        }
    }
}
