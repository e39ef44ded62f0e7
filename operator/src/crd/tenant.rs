//! `Tenant` (cluster-scoped): one customer of the platform.
//!
//! A Tenant claims namespaces, names the token issuer that vouches for its users, and sets its
//! budget, rate limit and model price list. The Tenant controller turns it into a PostgreSQL
//! role and rows (the contract the runtime reads) and labels the claimed namespaces with
//! `paddock.dev/tenant=<name>`, which the admission policy checks for ToolServers and AgentTasks.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CEL_HTTP_URL, Condition, DECIMAL, DNS1123_LABEL, MODEL_NAME};

/// A Paddock tenant: who its users are, where its workloads live, and what it may spend.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "Tenant",
    status = "TenantStatus",
    derive = "PartialEq",
    shortname = "tn",
    category = "paddock",
    doc = "Tenant is one customer of the platform: its namespaces, token issuer, budget, rate limit and model prices.",
    // The name becomes part of the database role `paddock_t_<name>_<hash>` (PostgreSQL
    // identifiers stop at 63 bytes) and the value of the `paddock.dev/tenant` namespace label.
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("Tenant names must be DNS-1123 labels of at most 40 characters (they name a database role and a label value)"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the tenant is provisioned and usable"}"#,
    printcolumn = r#"{"name":"Spend","type":"string","jsonPath":".status.spend.amount","description":"Spend in the current budget period"}"#,
    printcolumn = r#"{"name":"Budget","type":"string","jsonPath":".spec.budget.monthlyLimit","description":"Monthly spending limit"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".status.databaseCluster","priority":1,"description":"Database cluster the tenant is placed on"}"#,
    printcolumn = r#"{"name":"Currency","type":"string","jsonPath":".spec.budget.currency","priority":1,"description":"Currency of the budget"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Human-readable name shown in events and dashboards. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub display_name: Option<String>,

    /// Namespaces where this tenant's ToolServers and AgentTasks may live. The operator labels
    /// each one `paddock.dev/tenant=<tenant>`; a namespace belongs to at most one tenant, and
    /// `kube-*` system namespaces cannot be claimed.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("self.all(n, !n.startsWith('kube-'))").message("kube-* system namespaces cannot be claimed by a tenant")
    )]
    pub namespaces: Vec<String>,

    /// Who issues this tenant's access tokens, and which claims identify the tenant and the user.
    pub auth: TenantAuth,

    /// Monthly spending limit for model calls. Calls reserve budget before they run, so
    /// concurrent tasks cannot overspend it.
    pub budget: TenantBudget,

    /// Request rate limit shared by all replicas of all the tenant's ToolServers.
    #[serde(default)]
    pub rate_limit: TenantRateLimit,

    /// Models the tenant may use and what they cost. With no models, only the extractive
    /// (model-free) answerer is available.
    #[serde(default)]
    pub models: TenantModels,

    /// What happens to the tenant's data when the Tenant is deleted. The database role is
    /// always dropped (its open sessions are ended first); `Retain` keeps the tenant's rows,
    /// `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Which PostgreSQL cluster holds the tenant's role and rows. Without it the operator
    /// places the tenant by its policy (the cluster taking new tenants with the fewest tenants,
    /// ties broken by name) and records the choice in `status.databaseCluster`. A tenant is
    /// never moved: a cluster that differs from the recorded one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<TenantDatabase>,
}

/// Placement of a tenant's data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(oldSelf.cluster) || !has(self.cluster) || self.cluster == oldSelf.cluster")
        .message("database.cluster cannot be changed: moving a tenant between clusters is not supported (see the docs on logical replication)")
)]
pub struct TenantDatabase {
    /// Name of the PostgresCluster to place the tenant on, or `default` for the operator's own
    /// database. Cannot be changed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub cluster: Option<String>,
}

/// Token issuer settings for a tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantAuth {
    /// Issuer URL; a token's `iss` claim must equal it exactly. Use https; http is for
    /// development only.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(CEL_HTTP_URL).message("issuer must be an absolute http(s) URL"))]
    pub issuer: String,

    /// Audience a token's `aud` claim must contain, e.g. `paddock`.
    #[schemars(length(min = 1, max = 256))]
    pub audience: String,

    /// Token claim whose value must equal the Tenant's name.
    #[serde(default = "default_tenant_claim")]
    #[schemars(length(min = 1, max = 128))]
    pub tenant_claim: String,

    /// Token claim that identifies the user, for usage attribution and per-user limits.
    #[serde(default = "default_user_claim")]
    #[schemars(length(min = 1, max = 128))]
    pub user_claim: String,

    /// JWKS URL for the issuer's signing keys. Defaults to the `jwks_uri` in the issuer's
    /// OpenID/OAuth discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(CEL_HTTP_URL).message("jwksUri must be an absolute http(s) URL"))]
    pub jwks_uri: Option<String>,

    /// Further issuers trusted for this tenant (e.g. during an IdP migration). They use the
    /// same audience and claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["issuer".into()]))]
    pub additional_issuers: Vec<AdditionalIssuer>,
}

/// An extra trusted issuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalIssuer {
    /// Issuer URL; a token's `iss` claim must equal it exactly.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(CEL_HTTP_URL).message("issuer must be an absolute http(s) URL"))]
    pub issuer: String,

    /// JWKS URL for this issuer. Defaults to the one its discovery document names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(CEL_HTTP_URL).message("jwksUri must be an absolute http(s) URL"))]
    pub jwks_uri: Option<String>,
}

fn default_tenant_claim() -> String {
    "tenant_id".into()
}

fn default_user_claim() -> String {
    "sub".into()
}

/// Monthly budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantBudget {
    /// Spending limit per calendar month (UTC), as a decimal string such as `"25.00"`.
    /// Negative amounts are refused.
    #[schemars(length(min = 1, max = 19), regex(pattern = DECIMAL))]
    pub monthly_limit: String,

    /// ISO 4217 currency code of the limit and of the model prices.
    #[serde(default = "default_currency")]
    #[schemars(length(equal = 3), regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,

    /// Percentage of the limit at which a `BudgetWarning` condition and event are raised.
    #[serde(default = "default_warn_at_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub warn_at_percent: i32,

    /// When the budget cannot cover a model call, answer with the extractive (model-free)
    /// answerer instead of refusing the task.
    #[serde(default)]
    pub allow_extractive_fallback: bool,
}

fn default_currency() -> String {
    "USD".into()
}

fn default_warn_at_percent() -> i32 {
    80
}

/// Token-bucket rate limit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.burst <= self.requestsPerMinute").message("burst cannot exceed requestsPerMinute"),
    validation = Rule::new("!has(self.perUserRequestsPerMinute) || self.perUserRequestsPerMinute <= self.requestsPerMinute")
        .message("perUserRequestsPerMinute cannot exceed requestsPerMinute")
)]
pub struct TenantRateLimit {
    /// Sustained requests per minute for the whole tenant, across all replicas.
    #[serde(default = "default_rpm")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_minute: i32,

    /// Requests that may arrive at once above the sustained rate (the bucket size).
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 10_000))]
    pub burst: i32,

    /// Optional sustained limit for each user (the `userClaim` value) within the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub per_user_requests_per_minute: Option<i32>,
}

fn default_rpm() -> i32 {
    600
}

fn default_burst() -> i32 {
    100
}

impl Default for TenantRateLimit {
    fn default() -> Self {
        Self {
            requests_per_minute: default_rpm(),
            burst: default_burst(),
            per_user_requests_per_minute: None,
        }
    }
}

/// Model allow-list and prices.
///
/// Every allowed model must have a price: prices drive budget reservations, so an unpriced
/// model would be free and bypass the budget. Prices for models that are not allowed are
/// accepted (a shared price list can be kept in every Tenant).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.allowed) || self.allowed.all(m, has(self.prices) && m in self.prices)")
        .message("every allowed model needs an entry in prices")
        .field_path(".prices")
)]
pub struct TenantModels {
    /// Model names the tenant's tasks and tools may call.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128), regex(pattern = MODEL_NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed: Vec<String>,

    /// Price of each model, keyed by model name.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 64))]
    pub prices: BTreeMap<String, ModelPrice>,
}

/// Price of one model per 1,000 tokens, in the budget's currency.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    /// Price per 1,000 input (prompt) tokens, as a decimal string such as `"0.00015"`.
    #[schemars(length(min = 1, max = 19), regex(pattern = DECIMAL))]
    pub input_per_1k_tokens: String,

    /// Price per 1,000 output (completion) tokens, as a decimal string such as `"0.0006"`.
    #[schemars(length(min = 1, max = 19), regex(pattern = DECIMAL))]
    pub output_per_1k_tokens: String,
}

/// What to do with a tenant's data when its Tenant is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Drop the database role and keep the tenant's rows.
    #[default]
    Retain,
    /// Drop the tenant's rows and its database role.
    Delete,
}

/// Observed state of a Tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current conditions: `Ready`, `DatabaseProvisioned`, `NamespacesClaimed`,
    /// `BudgetWarning`, `BudgetExceeded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// PostgreSQL login role provisioned for the tenant: `paddock_t_<name>_<hash>`, e.g.
    /// `paddock_t_acme_1a2b3c4d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_role: Option<String>,

    /// Spend in the current budget period, from the usage ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<TenantSpend>,

    /// The database cluster the tenant is placed on: `default` (the operator's own database) or
    /// a PostgresCluster's name. Recorded before anything is provisioned there, and never
    /// changed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_cluster: Option<String>,
}

/// Spend so far in one budget period.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpend {
    /// Start of the budget period (the first instant of the month, UTC).
    pub period_start: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// Amount spent (settled plus reserved) in the period, as a decimal string.
    pub amount: String,
    /// ISO 4217 currency code of the amount.
    pub currency: String,
}
