//! Where a Tenant's data lives: the placement policy, as a pure function of the clusters and of
//! the tenants already on each.
//!
//! 1. A tenant already placed stays where it is. A spec that names another cluster is refused,
//!    never followed: moving a tenant is a data migration, not a reconcile.
//! 2. A tenant that names a cluster goes there, provided the cluster exists and is not being
//!    deleted (even when it does not take new tenants automatically: that is how a cluster is
//!    reserved for chosen tenants).
//! 3. Otherwise the tenant goes to the Ready cluster that takes new tenants, is not being
//!    deleted and holds the fewest tenants; ties go to the name that sorts first, so the choice
//!    is deterministic.

use std::collections::BTreeMap;

/// What placement needs to know of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub name: String,
    /// `spec.acceptsNewTenants` (the default cluster's setting for the implicit one).
    pub accepts_new_tenants: bool,
    /// Reached and migrated (its `Ready` condition); the default cluster always is, since the
    /// operator does not start without it.
    pub ready: bool,
    /// Being deleted (a deletion timestamp): it keeps the tenants already on it until they are
    /// gone, and takes no new one.
    pub deleting: bool,
}

/// Why a tenant cannot be placed. The text goes into the Tenant's `Ready` condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the tenant is placed on database cluster {placed}; spec.database.cluster names {requested}, and tenants are never moved between clusters (restore spec.database.cluster to {placed})"
    )]
    WouldMove { placed: String, requested: String },
    #[error(
        "database cluster {0} does not exist: create a PostgresCluster of that name, or name another cluster"
    )]
    NotFound(String),
    #[error("database cluster {0} is being deleted and takes no new tenants: name another cluster")]
    Deleting(String),
    #[error(
        "no database cluster takes new tenants: every PostgresCluster is not Ready, is being deleted or has acceptsNewTenants: false"
    )]
    NoneAvailable,
}

impl Refusal {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::WouldMove { .. } => "PlacementChangeRefused",
            Refusal::NotFound(_) => "ClusterNotFound",
            Refusal::Deleting(_) => "ClusterDeleting",
            Refusal::NoneAvailable => "NoClusterAvailable",
        }
    }

    /// Whether a change elsewhere (a cluster created or becoming Ready) can resolve it, as
    /// opposed to a change of the Tenant itself.
    pub fn waits_for_clusters(&self) -> bool {
        !matches!(self, Refusal::WouldMove { .. })
    }
}

/// The cluster for a tenant that names `requested` (if any) and is already on `placed` (if
/// any), among `clusters`, with `tenants` counting the tenants on each cluster (this one left
/// out).
pub fn place(
    requested: Option<&str>,
    placed: Option<&str>,
    clusters: &[ClusterView],
    tenants: &BTreeMap<String, usize>,
) -> Result<String, Refusal> {
    if let Some(placed) = placed {
        return match requested {
            Some(r) if r != placed => Err(Refusal::WouldMove {
                placed: placed.to_owned(),
                requested: r.to_owned(),
            }),
            _ => Ok(placed.to_owned()),
        };
    }
    if let Some(requested) = requested {
        return clusters
            .iter()
            .find(|c| c.name == requested)
            .ok_or_else(|| Refusal::NotFound(requested.to_owned()))
            .and_then(|c| {
                if c.deleting {
                    Err(Refusal::Deleting(requested.to_owned()))
                } else {
                    Ok(c.name.clone())
                }
            });
    }
    clusters
        .iter()
        .filter(|c| c.accepts_new_tenants && c.ready && !c.deleting)
        .min_by(|a, b| {
            let count = |c: &ClusterView| tenants.get(&c.name).copied().unwrap_or(0);
            count(a).cmp(&count(b)).then_with(|| a.name.cmp(&b.name))
        })
        .map(|c| c.name.clone())
        .ok_or(Refusal::NoneAvailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, accepts: bool, ready: bool) -> ClusterView {
        ClusterView {
            name: name.into(),
            accepts_new_tenants: accepts,
            ready,
            deleting: false,
        }
    }

    fn deleting(name: &str) -> ClusterView {
        ClusterView {
            deleting: true,
            ..cluster(name, true, true)
        }
    }

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    #[test]
    fn a_new_tenant_goes_to_the_cluster_with_the_fewest_tenants() {
        let clusters = [
            cluster("default", true, true),
            cluster("east", true, true),
            cluster("west", true, true),
        ];
        let tenants = counts(&[("default", 5), ("east", 2), ("west", 3)]);
        assert_eq!(place(None, None, &clusters, &tenants), Ok("east".into()));
    }

    #[test]
    fn a_cluster_no_tenant_is_on_counts_as_empty() {
        let clusters = [cluster("default", true, true), cluster("fresh", true, true)];
        let tenants = counts(&[("default", 1)]);
        assert_eq!(place(None, None, &clusters, &tenants), Ok("fresh".into()));
    }

    #[test]
    fn ties_go_to_the_name_that_sorts_first_whatever_the_listing_order() {
        let tenants = counts(&[("alpha", 2), ("beta", 2), ("gamma", 2)]);
        let clusters = [
            cluster("gamma", true, true),
            cluster("beta", true, true),
            cluster("alpha", true, true),
        ];
        assert_eq!(place(None, None, &clusters, &tenants), Ok("alpha".into()));
        let reversed: Vec<_> = clusters.iter().rev().cloned().collect();
        assert_eq!(place(None, None, &reversed, &tenants), Ok("alpha".into()));
    }

    #[test]
    fn a_cluster_not_taking_new_tenants_is_skipped_by_the_policy() {
        let clusters = [
            cluster("default", true, true),
            cluster("empty", false, true),
        ];
        let tenants = counts(&[("default", 100)]);
        assert_eq!(place(None, None, &clusters, &tenants), Ok("default".into()));
    }

    #[test]
    fn a_cluster_that_is_not_ready_is_skipped_by_the_policy() {
        let clusters = [cluster("default", true, true), cluster("down", true, false)];
        let tenants = counts(&[("default", 100)]);
        assert_eq!(place(None, None, &clusters, &tenants), Ok("default".into()));
    }

    #[test]
    fn a_named_cluster_is_used_even_when_it_takes_no_new_tenants_or_holds_more() {
        let clusters = [
            cluster("default", true, true),
            cluster("reserved", false, true),
        ];
        let tenants = counts(&[("reserved", 50)]);
        assert_eq!(
            place(Some("reserved"), None, &clusters, &tenants),
            Ok("reserved".into())
        );
        assert_eq!(
            place(Some("default"), None, &clusters, &tenants),
            Ok("default".into())
        );
    }

    #[test]
    fn a_named_cluster_that_does_not_exist_is_refused() {
        let clusters = [cluster("default", true, true)];
        let refused = place(Some("nowhere"), None, &clusters, &BTreeMap::new()).unwrap_err();
        assert_eq!(refused, Refusal::NotFound("nowhere".into()));
        assert_eq!(refused.reason(), "ClusterNotFound");
        assert!(refused.waits_for_clusters(), "creating it resolves it");
    }

    #[test]
    fn a_cluster_being_deleted_takes_no_new_tenant_but_keeps_its_own() {
        let clusters = [cluster("default", true, true), deleting("old")];
        // The emptiest, Ready and accepting: it would be chosen, were it not going.
        let tenants = counts(&[("default", 100)]);
        assert_eq!(place(None, None, &clusters, &tenants), Ok("default".into()));
        let refused = place(Some("old"), None, &clusters, &tenants).unwrap_err();
        assert_eq!(refused, Refusal::Deleting("old".into()));
        assert_eq!(refused.reason(), "ClusterDeleting");
        assert!(refused.waits_for_clusters());
        assert_eq!(
            place(Some("old"), Some("old"), &clusters, &tenants),
            Ok("old".into()),
            "a tenant placed there stays until it is deleted itself"
        );
        assert_eq!(
            place(None, None, &[deleting("old")], &BTreeMap::new()),
            Err(Refusal::NoneAvailable)
        );
    }

    #[test]
    fn no_cluster_available_is_refused() {
        for clusters in [
            vec![],
            vec![
                cluster("default", false, true),
                cluster("down", true, false),
            ],
        ] {
            let refused = place(None, None, &clusters, &BTreeMap::new()).unwrap_err();
            assert_eq!(refused, Refusal::NoneAvailable);
            assert_eq!(refused.reason(), "NoClusterAvailable");
        }
    }

    #[test]
    fn a_placed_tenant_stays_even_when_another_cluster_is_emptier() {
        let clusters = [cluster("busy", true, true), cluster("idle", true, true)];
        let tenants = counts(&[("busy", 1000)]);
        assert_eq!(
            place(None, Some("busy"), &clusters, &tenants),
            Ok("busy".into())
        );
        assert_eq!(
            place(Some("busy"), Some("busy"), &clusters, &tenants),
            Ok("busy".into())
        );
    }

    #[test]
    fn a_placed_tenant_stays_when_its_cluster_is_down_or_gone() {
        // Its data is there: it waits for the cluster rather than starting empty elsewhere.
        let clusters = [cluster("default", true, true), cluster("down", true, false)];
        assert_eq!(
            place(None, Some("down"), &clusters, &BTreeMap::new()),
            Ok("down".into())
        );
        assert_eq!(
            place(None, Some("gone"), &clusters, &BTreeMap::new()),
            Ok("gone".into())
        );
    }

    #[test]
    fn naming_another_cluster_for_a_placed_tenant_is_refused_not_followed() {
        let clusters = [cluster("east", true, true), cluster("west", true, true)];
        let refused = place(Some("west"), Some("east"), &clusters, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            refused,
            Refusal::WouldMove {
                placed: "east".into(),
                requested: "west".into()
            }
        );
        assert_eq!(refused.reason(), "PlacementChangeRefused");
        assert!(!refused.waits_for_clusters());
    }
}
