//! `PostgresCluster` (cluster-scoped): one PostgreSQL database, beyond the operator's own, that
//! tenants may be placed on.
//!
//! The operator's own database (`--admin-database-url`) is the implicit cluster named
//! [`DEFAULT_CLUSTER`]; each PostgresCluster adds one more. The operator reads the cluster's
//! admin DSN from a Secret (a CloudNativePG `<cluster>-superuser` Secret fits as it is), applies
//! the migrations there, and provisions the roles and rows of the tenants placed on it. Tenants
//! are placed by name (`Tenant.spec.database.cluster`) or by the policy in
//! [`crate::cluster::placement`], and stay where they were placed.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, DNS1123_LABEL, DNS1123_SUBDOMAIN, SECRET_KEY};

/// Name of the implicit cluster: the operator's own database, from `--admin-database-url`.
pub const DEFAULT_CLUSTER: &str = "default";

/// A PostgreSQL database the operator may place tenants on.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "PostgresCluster",
    status = "PostgresClusterStatus",
    derive = "PartialEq",
    shortname = "pgc",
    category = "paddock",
    doc = "PostgresCluster names a PostgreSQL database the operator may place tenants on: where its admin credentials are, the DSN tenants should use, and whether it takes new tenants.",
    // `default` is the operator's own database; the name also appears in Tenant status and in
    // DSN-free messages, so it stays a short DNS label.
    validation = Rule::new("self.metadata.name != 'default' && self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("PostgresCluster names must be DNS-1123 labels other than `default`, which names the operator's own database"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the operator reached and migrated the database"}"#,
    printcolumn = r#"{"name":"Tenants","type":"integer","jsonPath":".status.tenants","description":"Tenants placed on this cluster"}"#,
    printcolumn = r#"{"name":"Accepting","type":"boolean","jsonPath":".spec.acceptsNewTenants","description":"Whether new tenants are placed here automatically"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1,"description":"Why the cluster is or is not Ready"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PostgresClusterSpec {
    /// Secret holding the DSN of the cluster's admin role: a role that owns the Paddock schema
    /// (or may create it) and has CREATEROLE, like the role of `--admin-database-url`. A
    /// CloudNativePG `<cluster>-superuser` Secret (key `uri`) works as it is.
    pub admin_secret_ref: ClusterSecretRef,

    /// Database to use on the server, in place of the one the DSN names. A CloudNativePG
    /// superuser Secret names `*` (any database), so set this to the application database,
    /// e.g. `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$-]*$")
    )]
    pub database: Option<String>,

    /// Base of the DSNs handed to the tenants placed here (host, port, database, sslmode), when
    /// runtime pods reach the database at another address than the operator, e.g. a PgBouncer
    /// pooler or a read-write Service. Credentials in it are ignored. Defaults to the admin DSN
    /// without its credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('postgres://') || self.startsWith('postgresql://')").message("tenantUrl must be a postgres:// or postgresql:// URL"))]
    pub tenant_url: Option<String>,

    /// Whether the operator places new Tenants here when they name no cluster. Tenants already
    /// here stay, and a Tenant that names this cluster in `spec.database.cluster` is placed
    /// here either way (a cluster reserved for chosen tenants sets this to false).
    #[serde(default = "default_true")]
    pub accepts_new_tenants: bool,
}

fn default_true() -> bool {
    true
}

/// A key in a Secret in a named namespace (a PostgresCluster has no namespace of its own).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretRef {
    /// Namespace of the Secret, e.g. the namespace the CloudNativePG `Cluster` lives in.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Key inside the Secret whose value is the DSN, a `postgres://` or `postgresql://` URL.
    #[serde(default = "default_uri_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub key: String,
}

fn default_uri_key() -> String {
    "uri".into()
}

/// Observed state of a PostgresCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgresClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current conditions: `Ready` (the operator reached the database and its schema is
    /// migrated), `Migrated`, and `Deleting` (the PostgresCluster is deleted and waits for the
    /// tenants placed on it, which the message names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Tenants placed on this cluster. A PostgresCluster is not deleted while any are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<i32>,

    /// The server's version, as `SHOW server_version` reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}
