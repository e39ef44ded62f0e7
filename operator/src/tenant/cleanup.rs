//! The cleanup step of the Tenant controller, run by the finalizer when a Tenant is deleted: releases its
//! namespaces and drops its database role on the cluster it is placed on; its rows are kept or deleted according to `spec.deletionPolicy`.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt, runtime::controller::Action, runtime::events::EventType};

use super::{
    Error, apply,
    build::{self, Claim},
    db, status,
};
use crate::{
    cluster::registry::placed_cluster,
    context::Context,
    crd::{DEFAULT_CLUSTER, Tenant},
    names::RoleName,
    status::StatusBuilder,
};

pub async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    // The labelled namespaces, and the listed ones too in case a label was removed by hand.
    let mut namespaces = apply::labelled(&name, ctx).await?;
    for ns in &tenant.spec.namespaces {
        if !namespaces.contains(ns) {
            namespaces.push(ns.clone());
        }
    }
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in &namespaces {
        let owned_by_us = match ns_api
            .get_opt(ns)
            .await
            .map_err(|e| Error::ReadNamespace(ns.clone(), e))?
        {
            None => continue,
            Some(n) => build::claim_of(n.metadata.labels.as_ref(), &name) == Claim::Claimable,
        };
        if owned_by_us {
            apply::release_namespace(ctx, ns, &name).await?;
        }
    }

    let role = tenant
        .status
        .as_ref()
        .and_then(|s| s.database_role.as_deref())
        .and_then(|r| RoleName::parse(r).ok())
        .unwrap_or_else(|| RoleName::for_tenant(&name));
    let policy = tenant.spec.deletion_policy;
    // The role and rows are on the tenant's cluster; one that cannot be reached blocks the
    // deletion (the role would otherwise outlive the Tenant there).
    let cluster = placed_cluster(tenant).unwrap_or_else(|| DEFAULT_CLUSTER.to_owned());
    let handle = match ctx.clusters.handle(&cluster, &ctx.client).await {
        Ok(handle) => handle,
        Err(problem) => {
            tracing::error!(tenant = %name, cluster = %cluster, error = ?problem, "tenant deprovisioning failed");
            let mut st = StatusBuilder::new(tenant);
            status::deletion_blocked(&mut st, &problem);
            status::save(st, tenant, ctx).await?;
            return Err(Error::Cluster(problem));
        }
    };
    match db::deprovision(&handle.pool, &name, &role, policy).await {
        Ok(done) => {
            tracing::info!(tenant = %name, role = %role, ?policy, ?done, "tenant deprovisioned");
            let rows = if done.rows_deleted {
                "its rows were deleted"
            } else {
                "its rows were kept"
            };
            ctx.event(
                tenant,
                EventType::Normal,
                "Deprovisioned",
                "DeprovisionDatabase",
                format!("dropped database role {role} on cluster {cluster}; {rows}"),
            )
            .await;
            // The finalizer goes next, and the Tenant with it.
            ctx.metrics.remove_tenant(&name);
            Ok(Action::await_change())
        }
        Err(failure) => {
            tracing::error!(tenant = %name, error = ?failure, "tenant deprovisioning failed");
            let mut st = StatusBuilder::new(tenant);
            status::deletion_blocked(&mut st, &failure);
            status::save(st, tenant, ctx).await?;
            Err(Error::DeprovisionDatabase(failure))
        }
    }
}
