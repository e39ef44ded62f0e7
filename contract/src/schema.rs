//! The PostgreSQL schema: the migrations both sides rely on, and the names and statements the operator and the
//! runtime must agree on to use it.
//!
//! The operator applies [`MIGRATOR`] at start as the schema owner and provisions tenant login roles with
//! [`grant_tenant_group_sql`]; the runtime (and its tests) read and write through the roles the schema defines.
//! `docs/security.md` says what each role may do.

/// The schema, embedded at compile time (the build script reruns when `migrations/` changes).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The dimensions of the `documents.embedding` column: an embedder of any other size is refused.
pub const VECTOR_DIMENSIONS: usize = 384;

/// The group role whose table privileges every tenant login role holds (see the first migration).
pub const TENANT_GROUP: &str = "paddock_tenant";

/// Makes `quoted_role` (an already quoted identifier) a member of [`TENANT_GROUP`] the only way a tenant login
/// may be one: it holds the group's privileges (INHERIT) but can never `SET ROLE` to it (SET FALSE), so its
/// session stays its own login identity, the one `paddock_current_tenant()` pins to its tenant (migration
/// 0012). Idempotent: a grant that already exists takes these options.
pub fn grant_tenant_group_sql(quoted_role: &str) -> String {
    format!("GRANT {TENANT_GROUP} TO {quoted_role} WITH INHERIT TRUE, SET FALSE, ADMIN FALSE")
}
