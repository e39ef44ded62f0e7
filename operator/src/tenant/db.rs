//! Apply step of the Tenant controller, database half: the tenant's rows and login role, as the
//! operator's admin role (the schema owner, with CREATEROLE).
//!
//! Everything for one tenant happens in one transaction, serialised per tenant with an
//! advisory lock, and every statement is idempotent: an unchanged tenant rewrites nothing but
//! its (deterministic) password verifier. Values travel as bound parameters; the role name,
//! which SQL cannot bind, comes from [`RoleName`] (whitelisted characters) and is quoted.
//!
//! Errors are classified into [`DbFailure`], whose text is safe for a status condition; the
//! raw database error stays in the operator's log.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Transaction};

use super::spec::TenantRecord;
use crate::{
    crd::tenant::DeletionPolicy,
    credentials,
    names::{RoleName, quote_literal},
};

pub use paddock_contract::schema::TENANT_GROUP;
use paddock_contract::schema::grant_tenant_group_sql;

/// A failed database step, reduced to what a condition may say.
#[derive(Debug, thiserror::Error)]
pub enum DbFailure {
    #[error("the database is unreachable; retrying")]
    Unavailable(#[source] sqlx::Error),
    #[error(
        "the operator's database role lacks a privilege it needs (CREATEROLE, ADMIN OPTION on paddock_tenant, or ownership of the Paddock tables)"
    )]
    PermissionDenied(#[source] sqlx::Error),
    #[error("the Paddock schema is missing or outdated; the operator applies migrations at start")]
    SchemaMissing(#[source] sqlx::Error),
    #[error(
        "database role {role} exists but is not a plain tenant role ({why}); rename or drop it"
    )]
    RoleConflict { role: String, why: String },
    #[error("database role {role} still owns objects or holds privileges and cannot be dropped")]
    RoleInUse {
        role: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database refused the tenant's settings")]
    Refused(#[source] sqlx::Error),
    #[error("database provisioning failed; see the operator log")]
    Other(#[source] sqlx::Error),
}

impl DbFailure {
    /// The condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            DbFailure::Unavailable(_) => "DatabaseUnavailable",
            DbFailure::PermissionDenied(_) => "DatabasePermissionDenied",
            DbFailure::SchemaMissing(_) => "SchemaMissing",
            DbFailure::RoleConflict { .. } => "RoleConflict",
            DbFailure::RoleInUse { .. } => "RoleInUse",
            DbFailure::Refused(_) => "DatabaseRefused",
            DbFailure::Other(_) => "ProvisioningFailed",
        }
    }

    fn classify(e: sqlx::Error) -> Self {
        let code = sqlstate(&e);
        match (&e, code.as_deref()) {
            (
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed,
                _,
            ) => DbFailure::Unavailable(e),
            (_, Some(c)) if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                DbFailure::Unavailable(e)
            }
            (_, Some("42501")) => DbFailure::PermissionDenied(e),
            (_, Some("42P01" | "42703" | "42883")) => DbFailure::SchemaMissing(e),
            (_, Some(c)) if c.starts_with("23") || c.starts_with("22") => DbFailure::Refused(e),
            _ => DbFailure::Other(e),
        }
    }

    /// Whether retrying soon is likely to help.
    pub fn is_transient(&self) -> bool {
        matches!(self, DbFailure::Unavailable(_))
    }
}

impl From<sqlx::Error> for DbFailure {
    fn from(e: sqlx::Error) -> Self {
        Self::classify(e)
    }
}

/// What [`provision`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Provisioned {
    /// The role did not exist and was created.
    pub role_created: bool,
    /// The tenants row or its prices changed (or were created).
    pub rows_changed: bool,
}

/// Creates or updates the tenant's rows and login role, with `password` as the role's password.
pub async fn provision(
    pool: &PgPool,
    rec: &TenantRecord,
    password: &str,
) -> Result<Provisioned, DbFailure> {
    let mut tx = pool.begin().await?;
    lock_tenant(&mut tx, &rec.id).await?;
    let mut out = Provisioned::default();

    // The tenants row: rewritten only when a value differs, so updated_at means something.
    let changed = sqlx::query(
        "INSERT INTO tenants AS t (id, display_name, budget_monthly, currency, warn_at_percent,
                requests_per_minute, burst, allowed_models, allow_extractive_fallback,
                auth_issuer, auth_audience, tenant_claim)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (id) DO UPDATE SET
                display_name = EXCLUDED.display_name, budget_monthly = EXCLUDED.budget_monthly,
                currency = EXCLUDED.currency, warn_at_percent = EXCLUDED.warn_at_percent,
                requests_per_minute = EXCLUDED.requests_per_minute, burst = EXCLUDED.burst,
                allowed_models = EXCLUDED.allowed_models,
                allow_extractive_fallback = EXCLUDED.allow_extractive_fallback,
                auth_issuer = EXCLUDED.auth_issuer, auth_audience = EXCLUDED.auth_audience,
                tenant_claim = EXCLUDED.tenant_claim, updated_at = now()
          WHERE (t.display_name, t.budget_monthly, t.currency, t.warn_at_percent, t.requests_per_minute,
                 t.burst, t.allowed_models, t.allow_extractive_fallback, t.auth_issuer, t.auth_audience,
                 t.tenant_claim)
                IS DISTINCT FROM
                (EXCLUDED.display_name, EXCLUDED.budget_monthly, EXCLUDED.currency, EXCLUDED.warn_at_percent,
                 EXCLUDED.requests_per_minute, EXCLUDED.burst, EXCLUDED.allowed_models,
                 EXCLUDED.allow_extractive_fallback, EXCLUDED.auth_issuer, EXCLUDED.auth_audience,
                 EXCLUDED.tenant_claim)",
    )
    .bind(&rec.id)
    .bind(&rec.display_name)
    .bind(rec.budget_monthly)
    .bind(&rec.currency)
    .bind(rec.warn_at_percent)
    .bind(rec.requests_per_minute)
    .bind(rec.burst)
    .bind(&rec.allowed_models)
    .bind(rec.allow_extractive_fallback)
    .bind(&rec.auth_issuer)
    .bind(&rec.auth_audience)
    .bind(&rec.tenant_claim)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    out.rows_changed |= changed > 0;

    // Prices: exactly the spec's list.
    let models: Vec<&str> = rec.prices.iter().map(|(m, _, _)| m.as_str()).collect();
    let inputs: Vec<Decimal> = rec.prices.iter().map(|(_, i, _)| *i).collect();
    let outputs: Vec<Decimal> = rec.prices.iter().map(|(_, _, o)| *o).collect();
    let removed =
        sqlx::query("DELETE FROM model_prices WHERE tenant_id = $1 AND NOT (model = ANY($2))")
            .bind(&rec.id)
            .bind(&models)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let upserted = sqlx::query(
        "INSERT INTO model_prices AS p (tenant_id, model, input_per_1k, output_per_1k)
         SELECT $1, m, i, o FROM UNNEST($2::text[], $3::numeric[], $4::numeric[]) AS x(m, i, o)
         ON CONFLICT (tenant_id, model) DO UPDATE
            SET input_per_1k = EXCLUDED.input_per_1k, output_per_1k = EXCLUDED.output_per_1k
          WHERE (p.input_per_1k, p.output_per_1k) IS DISTINCT FROM (EXCLUDED.input_per_1k, EXCLUDED.output_per_1k)",
    )
    .bind(&rec.id)
    .bind(&models)
    .bind(&inputs)
    .bind(&outputs)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    out.rows_changed |= removed + upserted > 0;

    out.role_created = ensure_role(&mut tx, &rec.role, password).await?;

    // The role → tenant mapping that pins a login to its tenant (paddock_current_tenant()).
    sqlx::query("INSERT INTO tenant_roles (role_name, tenant_id) VALUES ($1, $2) ON CONFLICT (role_name) DO NOTHING")
        .bind(rec.role.as_str())
        .bind(&rec.id)
        .execute(&mut *tx)
        .await?;
    let mapped: String =
        sqlx::query_scalar("SELECT tenant_id FROM tenant_roles WHERE role_name = $1")
            .bind(rec.role.as_str())
            .fetch_one(&mut *tx)
            .await?;
    if mapped != rec.id {
        return Err(DbFailure::RoleConflict {
            role: rec.role.to_string(),
            why: format!("it is mapped to tenant {mapped}"),
        });
    }

    tx.commit().await?;
    Ok(out)
}

async fn lock_tenant(tx: &mut Transaction<'_, Postgres>, tenant: &str) -> Result<(), DbFailure> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('paddock.tenant:' || $1, 0))")
        .bind(tenant)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Creates the login role, or brings an existing one back to the expected shape. Returns
/// whether it was created.
async fn ensure_role(
    tx: &mut Transaction<'_, Postgres>,
    role: &RoleName,
    password: &str,
) -> Result<bool, DbFailure> {
    let verifier = quote_literal(&credentials::scram_verifier(role.as_str(), password));
    let existing: Option<(bool, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles WHERE rolname = $1",
    )
    .bind(role.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let quoted = role.quoted();
    match existing {
        None => {
            sqlx::query(&format!(
                "CREATE ROLE {quoted} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
                 PASSWORD {verifier}"
            ))
            .execute(&mut **tx)
            .await?;
            pin_membership(tx, role).await?;
            Ok(true)
        }
        Some((superuser, bypassrls, createrole, createdb, replication)) => {
            let attrs: Vec<&str> = [
                (superuser, "SUPERUSER"),
                (bypassrls, "BYPASSRLS"),
                (createrole, "CREATEROLE"),
                (createdb, "CREATEDB"),
                (replication, "REPLICATION"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            if !attrs.is_empty() {
                // Never hand a tenant's runtime a role that bypasses row-level security.
                return Err(DbFailure::RoleConflict {
                    role: role.to_string(),
                    why: format!("it has {}", attrs.join(", ")),
                });
            }
            sqlx::query(&format!(
                "ALTER ROLE {quoted} WITH LOGIN INHERIT PASSWORD {verifier}"
            ))
            .execute(&mut **tx)
            .await?;
            pin_membership(tx, role).await?;
            Ok(false)
        }
    }
}

/// Makes the role's one group membership the pinned one: a member of [`TENANT_GROUP`] that holds its
/// privileges but cannot `SET ROLE` to it (see [`grant_tenant_group_sql`]). A grant with any other options (with
/// SET, as roles made before migration 0012 had) is revoked as its grantor made it; membership in any other role
/// means the role is not ours to hand out. An already pinned role is left untouched.
async fn pin_membership(
    tx: &mut Transaction<'_, Postgres>,
    role: &RoleName,
) -> Result<(), DbFailure> {
    let grants: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT m.roleid::regrole::text, m.grantor::regrole::text,
                m.inherit_option AND NOT m.set_option AND NOT m.admin_option
           FROM pg_auth_members m
          WHERE m.member = $1::regrole",
    )
    .bind(role.quoted())
    .fetch_all(&mut **tx)
    .await?;
    let mut pinned = false;
    for (group, grantor, as_pinned) in grants {
        if group != TENANT_GROUP {
            return Err(DbFailure::RoleConflict {
                role: role.to_string(),
                why: format!("it is a member of {group}"),
            });
        }
        if as_pinned {
            pinned = true;
            continue;
        }
        let revoked = sqlx::query(&format!(
            "REVOKE {TENANT_GROUP} FROM {} GRANTED BY {grantor}",
            role.quoted()
        ))
        .execute(&mut **tx)
        .await;
        match revoked.map_err(DbFailure::from) {
            Ok(_) => {}
            Err(DbFailure::PermissionDenied(_)) => {
                return Err(DbFailure::RoleConflict {
                    role: role.to_string(),
                    why: format!(
                        "its grant of {TENANT_GROUP} by {grantor} lets it SET ROLE, and only {grantor} may revoke it"
                    ),
                });
            }
            Err(e) => return Err(e),
        }
    }
    if !pinned {
        sqlx::query(&grant_tenant_group_sql(&role.quoted()))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// What [`deprovision`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deprovisioned {
    pub role_dropped: bool,
    /// Sessions of the role that were terminated.
    pub sessions_terminated: u64,
    /// The tenants row (and, by cascade, every row of the tenant) was deleted.
    pub rows_deleted: bool,
}

/// Drops the tenant's role, and its rows too under [`DeletionPolicy::Delete`].
///
/// The role first loses LOGIN, so no new session starts; then its open sessions are
/// terminated (this needs `pg_signal_backend` or membership in the role; without it the
/// sessions keep running until they disconnect, which is logged), then it is dropped.
pub async fn deprovision(
    pool: &PgPool,
    tenant: &str,
    role: &RoleName,
    policy: DeletionPolicy,
) -> Result<Deprovisioned, DbFailure> {
    let mut out = Deprovisioned::default();
    let quoted = role.quoted();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role.as_str())
            .fetch_one(pool)
            .await?;
    if exists {
        sqlx::query(&format!("ALTER ROLE {quoted} WITH NOLOGIN"))
            .execute(pool)
            .await?;
        match sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
        )
        .bind(role.as_str())
        .fetch_one(pool)
        .await
        {
            Ok(n) => out.sessions_terminated = n as u64,
            Err(e) if sqlstate(&e).as_deref() == Some("42501") => {
                tracing::warn!(role = %role, "not allowed to terminate the role's sessions; they end when they disconnect");
            }
            Err(e) => return Err(e.into()),
        }
    }

    let mut tx = pool.begin().await?;
    lock_tenant(&mut tx, tenant).await?;
    sqlx::query("DELETE FROM tenant_roles WHERE role_name = $1")
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
    if policy == DeletionPolicy::Delete {
        out.rows_deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
    }
    if exists {
        sqlx::query(&format!("DROP ROLE IF EXISTS {quoted}"))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if sqlstate(&e).as_deref() == Some("2BP01") {
                    DbFailure::RoleInUse {
                        role: role.to_string(),
                        source: e,
                    }
                } else {
                    e.into()
                }
            })?;
        out.role_dropped = true;
    }
    tx.commit().await?;
    Ok(out)
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Spend in the current budget period (the calendar month in UTC): settled usage from the
/// ledger plus the reservations of model calls still running, the figure the runtime checks
/// its budget against.
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    pub period_start: DateTime<Utc>,
    /// Settled cost in the usage ledger.
    pub settled: Decimal,
    /// Budget held by calls that have not settled yet.
    pub reserved: Decimal,
    /// `settled + reserved`.
    pub amount: Decimal,
}

pub async fn current_spend(pool: &PgPool, tenant: &str) -> Result<Spend, DbFailure> {
    let (period_start, settled, reserved): (DateTime<Utc>, Decimal, Decimal) = sqlx::query_as(
        "WITH p AS (SELECT paddock_budget_period() AS start)
         SELECT (p.start::timestamp AT TIME ZONE 'UTC'),
                COALESCE((SELECT sum(u.cost) FROM usage_ledger u
                           WHERE u.tenant_id = $1 AND u.period_start = p.start), 0),
                COALESCE((SELECT sum(r.amount) FROM budget_reservations r
                           WHERE r.tenant_id = $1 AND r.period_start = p.start AND r.state = 'held'), 0)
           FROM p",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?;
    Ok(Spend {
        period_start,
        settled,
        reserved,
        amount: settled + reserved,
    })
}
