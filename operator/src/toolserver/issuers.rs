//! Which of a tenant's issuers a runtime can trust, and where their keys are.
//!
//! An issuer with `jwksUri` is used as given; one without is resolved through its discovery
//! document (OpenID Connect, then RFC 8414). A JWKS URL must be https (plain http only on
//! loopback), the rule the runtime itself enforces: a runtime given anything else would refuse
//! to start, so such an issuer is left out and reported instead. Discovery results are cached
//! (10 minutes; failures 1 minute), so reconciles do not hammer the identity provider.

use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;

use super::build::ResolvedIssuer;
use crate::{context::Context, crd::Tenant};

const CACHE_OK: Duration = Duration::from_secs(600);
const CACHE_FAILED: Duration = Duration::from_secs(60);

/// Whether the runtime will fetch keys from `url`: https, or http on a loopback host.
pub fn jwks_url_acceptable(url: &str) -> bool {
    let Ok(u) = Url::parse(url) else { return false };
    match u.scheme() {
        "https" => u.host_str().is_some_and(|h| !h.is_empty()),
        "http" => match u.host_str() {
            Some("localhost") => true,
            Some(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        },
        _ => false,
    }
}

/// The discovery documents to try for `issuer`, in order.
pub fn discovery_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    // RFC 8414 §3.1: the well-known segment goes between host and path.
    if let Ok(u) = Url::parse(trimmed) {
        let path = u.path().trim_end_matches('/');
        let mut m = u.clone();
        m.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        m.set_query(None);
        urls.push(m.to_string());
    }
    urls
}

#[derive(Deserialize)]
struct DiscoveryDoc {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

/// The tenant's issuers (main and additional), each with its JWKS URL or the reason it cannot
/// be trusted.
pub async fn resolve(ctx: &Context, tenant: &Tenant) -> (Vec<ResolvedIssuer>, Vec<String>) {
    let auth = &tenant.spec.auth;
    let mut wanted = vec![(auth.issuer.clone(), auth.jwks_uri.clone())];
    wanted.extend(
        auth.additional_issuers
            .iter()
            .map(|a| (a.issuer.clone(), a.jwks_uri.clone())),
    );
    let (mut ok, mut problems) = (vec![], vec![]);
    for (issuer, jwks) in wanted {
        let url = match jwks {
            Some(url) => Ok(url),
            None => discover(ctx, &issuer).await,
        };
        match url {
            Ok(url) if jwks_url_acceptable(&url) => ok.push(ResolvedIssuer {
                issuer,
                jwks_url: url,
            }),
            Ok(url) => problems.push(format!("issuer {issuer}: JWKS URL {url} must use https")),
            Err(why) => problems.push(format!("issuer {issuer}: {why}")),
        }
    }
    (ok, problems)
}

async fn discover(ctx: &Context, issuer: &str) -> Result<String, String> {
    if let Some((result, at)) = ctx
        .discovery
        .lock()
        .expect("discovery cache")
        .get(issuer)
        .cloned()
    {
        let ttl = if result.is_ok() {
            CACHE_OK
        } else {
            CACHE_FAILED
        };
        if at.elapsed() < ttl {
            return result;
        }
    }
    let mut result = Err("no discovery document found".to_owned());
    for url in discovery_urls(issuer) {
        let fetched = async {
            let resp = ctx
                .http
                .get(&url)
                .timeout(ctx.settings.http_timeout)
                .send()
                .await
                .ok()?;
            if !resp.status().is_success() {
                return None;
            }
            resp.json::<DiscoveryDoc>().await.ok()
        }
        .await;
        if let Some(doc) = fetched {
            result = match (doc.issuer, doc.jwks_uri) {
                (Some(i), Some(j)) if i.trim_end_matches('/') == issuer.trim_end_matches('/') => {
                    Ok(j)
                }
                (Some(_), Some(_)) => Err(format!(
                    "the discovery document at {url} names another issuer"
                )),
                _ => Err(format!("the discovery document at {url} has no jwks_uri")),
            };
            break;
        }
    }
    if let Err(why) = &result {
        tracing::info!(%issuer, reason = %why, "issuer discovery failed");
    }
    ctx.discovery
        .lock()
        .expect("discovery cache")
        .insert(issuer.to_owned(), (result.clone(), Instant::now()));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_follow_the_runtime_rule() {
        assert!(jwks_url_acceptable("https://idp.example.com/certs"));
        assert!(jwks_url_acceptable("http://127.0.0.1:8080/jwks.json"));
        assert!(jwks_url_acceptable("http://localhost/jwks.json"));
        assert!(jwks_url_acceptable("http://[::1]:9/jwks"));
        assert!(!jwks_url_acceptable(
            "http://paddock-dev-issuer.paddock-system.svc:8080/jwks.json"
        ));
        assert!(!jwks_url_acceptable("file:///etc/jwks.json"));
        assert!(!jwks_url_acceptable("not a url"));
    }

    #[test]
    fn discovery_tries_oidc_then_rfc_8414() {
        assert_eq!(
            discovery_urls("https://idp.example.com/realms/acme/"),
            [
                "https://idp.example.com/realms/acme/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/acme",
            ]
        );
        assert_eq!(
            discovery_urls("https://idp.example.com"),
            [
                "https://idp.example.com/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server"
            ]
        );
    }
}
