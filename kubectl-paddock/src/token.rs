//! `kubectl paddock token TENANT`: a development token from the operator's issuer, for the
//! ToolServer that serves the tenant (the token's audience is that server's MCP endpoint).

use std::{io::Write, time::Duration};

use clap::Parser;
use kube::ResourceExt;
use paddock_contract::identity::{self, scopes};
use paddock_operator::{
    crd::{tenant::Tenant, toolserver::ToolServer},
    devissuer::DevIssuer,
};

use crate::cluster::{self, Cluster};

/// The user the plugin's own tokens name (for `usage` and `logs`), and `token`'s default.
pub const PLUGIN_USER: &str = "kubectl-paddock";

/// The longest a development token may live: it is a bearer credential for the tenant's data.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  kubectl paddock token acme --scope documents:read
  kubectl paddock token acme --scope 'documents:read tasks:run' --user alice --ttl 8h
  TOKEN=$(kubectl paddock token acme --scope usage:read --toolserver acme/docs)")]
pub struct Args {
    /// The tenant the token speaks for.
    pub tenant: String,
    /// Scopes to grant, space-separated or repeated: documents:read, documents:write, tasks:run,
    /// tasks:admin, usage:read. Without any, the token can only open a session.
    #[arg(long, value_delimiter = ' ', num_args = 1..)]
    pub scope: Vec<String>,
    /// The user the token names (`sub`); tasks, sessions and per-user spend are kept under it.
    #[arg(long, default_value = PLUGIN_USER)]
    pub user: String,
    /// Lifetime: seconds, or a number with s, m, h or d (at most 24h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// The ToolServer (NAMESPACE/NAME) the token is for, when the tenant has several.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub toolserver: Option<String>,
    /// The development issuer's `iss`, as the chart's `devIssuer.issuer` sets it.
    #[arg(long, env = "PADDOCK_DEV_ISSUER", default_value = cluster::DEV_ISSUER)]
    pub issuer: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown scope {0:?}; the scopes are {known}", known = scopes::ALL.join(", "))]
    UnknownScope(String),
    #[error("{0:?} is not a valid user id")]
    BadUser(String),
    #[error("failed to mint the token")]
    Mint(#[source] paddock_contract::dev::DevError),
}

pub async fn run(kube: &Cluster, args: Args, out: &mut impl Write) -> Result<(), crate::Error> {
    let scopes = checked_scopes(&args.scope)?;
    if !identity::is_valid_user(&args.user) {
        return Err(Error::BadUser(args.user).into());
    }
    let tenant = kube.tenant(&args.tenant).await?;
    let ts = kube
        .toolserver_for(&args.tenant, args.toolserver.as_deref())
        .await?;
    let token = for_toolserver(
        kube,
        &args.issuer,
        &tenant,
        &ts,
        &args.user,
        &scopes,
        args.ttl,
    )
    .await?;
    writeln!(out, "{token}")?;
    Ok(())
}

/// A token for `tenant` at `ts` from the development issuer `issuer`, as the operator mints its own
/// (`tenant_id` claim, `sub` user, the server's MCP endpoint as audience).
pub async fn for_toolserver(
    kube: &Cluster,
    issuer: &str,
    tenant: &Tenant,
    ts: &ToolServer,
    user: &str,
    scopes: &[&str],
    ttl: Duration,
) -> Result<String, crate::Error> {
    let key: DevIssuer = kube.dev_issuer(tenant, issuer).await?;
    let token = key
        .mint(
            &tenant.name_any(),
            &paddock_operator::toolserver::build::resource_url(ts),
            user,
            scopes,
            ttl,
        )
        .map_err(Error::Mint)?;
    Ok(token)
}

/// The requested scopes, each one the runtime knows, without repeats.
pub fn checked_scopes(requested: &[String]) -> Result<Vec<&'static str>, Error> {
    let mut granted = Vec::new();
    for s in requested.iter().flat_map(|s| s.split_whitespace()) {
        let known = scopes::ALL
            .iter()
            .find(|k| **k == s)
            .ok_or_else(|| Error::UnknownScope(s.to_owned()))?;
        if !granted.contains(known) {
            granted.push(*known);
        }
    }
    Ok(granted)
}

/// `90`, `90s`, `15m`, `8h`, `1d`: at least a second, at most [`MAX_TTL`].
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 8h or 1d"))?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration like 90s, 15m, 8h or 1d"))?;
    let ttl = Duration::from_secs(seconds);
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(format!("{s:?} is outside 1s to 24h"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_take_a_unit_and_stay_within_a_day() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("24h"), Ok(MAX_TTL));
        assert_eq!(parse_ttl("1d"), Ok(MAX_TTL));
        for bad in [
            "0",
            "25h",
            "2d",
            "1w",
            "h",
            "-5m",
            "",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn scopes_are_checked_and_deduplicated() {
        let asked = vec![
            "documents:read tasks:run".to_owned(),
            "documents:read".to_owned(),
        ];
        assert_eq!(
            checked_scopes(&asked).unwrap(),
            vec![scopes::DOCUMENTS_READ, scopes::TASKS_RUN]
        );
        let err = checked_scopes(&["documents:admin".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("documents:admin"), "{err}");
        assert!(checked_scopes(&[]).unwrap().is_empty());
    }
}
