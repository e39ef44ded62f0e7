//! Deleting a PostgresCluster: it goes only once no tenant is placed on it.
//!
//! The tenants' roles and rows are on that database, and a Tenant's cleanup drops them through
//! the operator's pool to it; were the PostgresCluster gone first, those Tenants could not
//! finish being deleted and their roles would outlive them. So, as Kubernetes keeps a
//! PersistentVolumeClaim a Pod still uses, the finalizer keeps the cluster while any Tenant is
//! placed on it, with a `Deleting` condition naming them. Meanwhile the cluster serves its
//! tenants as before and takes no new one ([`super::placement`]). Deleting it never touches
//! its database.

use kube::{Api, ResourceExt, api::ListParams, runtime::controller::Action};

use super::Error;
use crate::{
    conditions::{Desired, Status},
    context::Context,
    crd::{PostgresCluster, Tenant},
    status::StatusBuilder,
};

/// The condition a deletion that waits for tenants sets.
pub const CONDITION: &str = "Deleting";
/// How many tenants the condition's message names.
const NAMED: usize = 10;

/// The finalizer's cleanup: `Ok` lets the PostgresCluster go; [`Error::TenantsPlaced`] keeps it.
pub async fn release(pgc: &PostgresCluster, ctx: &Context) -> Result<Action, Error> {
    let name = pgc.name_any();
    // A fresh list rather than the controller's cache, which may not be synced yet: releasing
    // too early is what this guards against.
    let tenants: Api<Tenant> = Api::all(ctx.client.clone());
    let listed = tenants
        .list(&ListParams::default())
        .await
        .map_err(Error::ListTenants)?;
    let placed = ctx.clusters.placed_on(&name, &listed.items);
    if placed.is_empty() {
        ctx.clusters.forget(&name);
        ctx.metrics.remove_postgrescluster(&name);
        tracing::info!(cluster = %name, "database cluster released: no tenant is placed on it");
        return Ok(Action::await_change());
    }
    let mut st = StatusBuilder::new(pgc);
    st.status.tenants = Some(i32::try_from(placed.len()).unwrap_or(i32::MAX));
    st.set(Desired::new(
        CONDITION,
        Status::True,
        "TenantsPlaced",
        waiting_message(&placed),
    ));
    st.save(pgc, ctx).await.map_err(Error::PatchStatus)?;
    tracing::info!(cluster = %name, tenants = placed.len(), "database cluster deletion waits for its tenants");
    Err(Error::TenantsPlaced(placed))
}

fn waiting_message(placed: &[String]) -> String {
    let mut names = placed
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if placed.len() > NAMED {
        names.push_str(&format!(" and {} more", placed.len() - NAMED));
    }
    let which = match placed.len() {
        1 => "the tenant placed on this cluster".to_owned(),
        n => format!("the {n} tenants placed on this cluster"),
    };
    format!(
        "the deletion waits for {which} ({names}): their roles and rows are there; delete those Tenants (each one's deletionPolicy decides its rows) and the cluster goes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_first_tenants_and_counts_the_rest() {
        let one = vec!["a".to_owned()];
        assert!(waiting_message(&one).contains("waits for the tenant placed on this cluster (a):"));
        let few: Vec<String> = ["a", "b"].map(String::from).to_vec();
        assert!(
            waiting_message(&few)
                .contains("waits for the 2 tenants placed on this cluster (a, b):")
        );
        let many: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
        let m = waiting_message(&many);
        assert!(
            m.contains("(t00, t01, t02, t03, t04, t05, t06, t07, t08, t09 and 2 more)"),
            "{m}"
        );
    }
}
