//! The placement step of the Tenant controller: which database cluster holds the tenant's role
//! and rows.
//!
//! A tenant already placed stays (its status says where). A new one is placed by
//! [`placement::place`] over the default cluster and every PostgresCluster, with the tenants
//! already on each counted, and the choice is written to `status.databaseCluster` *before*
//! anything is provisioned there: an operator that dies right after still finds the tenant
//! where it put it. Placements are serialised within the process, so tenants applied together
//! spread out rather than all landing on the cluster that was emptiest a moment ago.

use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use crate::{
    cluster::{
        placement::{self, Refusal},
        registry::{placed_cluster, requested_cluster},
    },
    context::Context,
    crd::{PostgresCluster, Tenant},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to list the PostgresClusters")]
    ListClusters(#[source] kube::Error),
    #[error("failed to record the tenant's database cluster in its status")]
    RecordPlacement(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ListClusters(_) => "ListClusters",
            Error::RecordPlacement(_) => "RecordPlacement",
        }
    }
}

/// The tenant's cluster, or why it has none.
pub async fn place(tenant: &Tenant, ctx: &Context) -> Result<Result<String, Refusal>, Error> {
    let requested = requested_cluster(tenant);
    if let Some(placed) = placed_cluster(tenant) {
        return Ok(placement::place(
            requested,
            Some(&placed),
            &[],
            &Default::default(),
        ));
    }
    let name = tenant.name_any();
    let _placing = ctx.clusters.placing.lock().await;
    let clusters: Api<PostgresCluster> = Api::all(ctx.client.clone());
    let listed = clusters
        .list(&ListParams::default())
        .await
        .map_err(Error::ListClusters)?;
    let views = ctx.clusters.views(&listed.items);
    let counts = ctx.clusters.tenant_counts(&name);
    let chosen = match placement::place(requested, None, &views, &counts) {
        Ok(c) => c,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let tenants: Api<Tenant> = Api::all(ctx.client.clone());
    tenants
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"databaseCluster": chosen}})),
        )
        .await
        .map_err(Error::RecordPlacement)?;
    ctx.clusters.record_placement(&name, &chosen);
    tracing::info!(tenant = %name, cluster = %chosen, requested = ?requested, "tenant placed");
    Ok(Ok(chosen))
}
