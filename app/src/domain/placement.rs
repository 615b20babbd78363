//! Tenant placement: on which shard a tenant's tailnet lives (DESIGN.md §1, §8).
//!
//! Pure and deterministic. The caller loads the candidate shards and the tenant's
//! current placement, calls [`place`], and records the decision; nothing here does I/O.
//! The rules, their order and the refusals are documented for operators in
//! `docs/placement.md`; keep the two in step.
//!
//! In short: a tenant already placed stays where it is (moving is an operator action).
//! A new tenant goes to an active shard in its region that serves its plan, respects
//! dedication (a shard reserved for one tenant takes no other; a dedicated tenant gets an
//! empty shard) and has room for the tenant's whole device quota. Among those, shards
//! already in use come before empty ones, then the most room left wins, then the
//! smallest `cluster_id`, so the answer never depends on the order of the input.

use super::shard::ShardStatus;
use super::tenant::TenantCode;
use crate::error::AppError;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt;

/// The plans a shard serves: any plan, or only the named ones (e.g. shards kept for
/// `business` tenants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServedPlans {
    Any,
    Only(BTreeSet<String>),
}

impl ServedPlans {
    pub fn only<I, S>(plans: I) -> ServedPlans
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ServedPlans::Only(plans.into_iter().map(Into::into).collect())
    }

    pub fn serves(&self, plan: &str) -> bool {
        match self {
            ServedPlans::Any => true,
            ServedPlans::Only(plans) => plans.contains(plan),
        }
    }
}

/// Plans whose tenants always get a shard of their own.
pub const DEDICATED_PLANS: &[&str] = &["enterprise"];

/// Whether tenants on `plan` get a dedicated shard. An operator can also ask for one
/// explicitly on any plan ([`PlacementRequest::dedicated`]).
pub fn plan_gets_dedicated_shard(plan: &str) -> bool {
    DEDICATED_PLANS.contains(&plan)
}

/// What placement needs to know about one shard.
///
/// `cluster_id` is unique among the candidates (the `shard_cluster_id_key` constraint);
/// the ordering relies on it to break ties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCandidate {
    pub cluster_id: String,
    pub region: String,
    pub status: ShardStatus,
    /// The most nodes the operator lets this shard carry (`shard.node_capacity`).
    pub node_capacity: u32,
    /// The sum of the device quotas of the tenants already placed on the shard.
    pub committed_nodes: u32,
    /// Nodes registered on the shard now (from the sync mirror).
    pub node_count: u32,
    /// Tenants already placed on the shard.
    pub tenant_count: u32,
    /// The tenant this shard is reserved for, if any.
    pub dedicated_to: Option<TenantCode>,
    pub plans: ServedPlans,
}

impl ShardCandidate {
    /// Nodes counted as taken: what is promised to tenants (their quotas) or what is
    /// really there, whichever is larger. Nodes can exceed quotas (reusable keys slip
    /// over, DESIGN.md §7), and a shard must not be filled past capacity on paper while
    /// it is already fuller in fact.
    pub fn used_nodes(&self) -> u64 {
        u64::from(self.committed_nodes.max(self.node_count))
    }

    /// Nodes still free for new reservations.
    pub fn headroom(&self) -> u64 {
        u64::from(self.node_capacity).saturating_sub(self.used_nodes())
    }

    /// Whether `nodes` more can be reserved without exceeding `node_capacity`.
    pub fn has_room_for(&self, nodes: u32) -> bool {
        self.used_nodes() + u64::from(nodes) <= u64::from(self.node_capacity)
    }

    fn is_empty(&self) -> bool {
        self.tenant_count == 0
    }
}

/// A tenant asking for a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRequest {
    pub tenant: TenantCode,
    pub plan: String,
    pub region: String,
    /// Whether a shard outside `region` may be chosen when none in it fits. Shards in
    /// `region` are still preferred.
    pub any_region: bool,
    /// The tenant's device quota: how many nodes to reserve on the shard.
    pub node_quota: u32,
    /// Whether the tenant needs a shard of its own.
    pub dedicated: bool,
    /// The shard the tenant is already placed on, if any (`cluster_id`).
    pub current_shard: Option<String>,
}

impl PlacementRequest {
    /// A request for a tenant not placed yet, in its own region only; dedicated when
    /// its plan says so.
    pub fn new(
        tenant: TenantCode,
        plan: impl Into<String>,
        region: impl Into<String>,
        node_quota: u32,
    ) -> PlacementRequest {
        let plan = plan.into();
        PlacementRequest {
            tenant,
            dedicated: plan_gets_dedicated_shard(&plan),
            plan,
            region: region.into(),
            any_region: false,
            node_quota,
            current_shard: None,
        }
    }
}

/// What the caller has to record for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementKind {
    /// The tenant is already on this shard: nothing to record.
    Kept,
    /// The tenant shares the shard: record the tenant's shard.
    Shared,
    /// The shard is the tenant's own: record the tenant's shard and reserve the shard for
    /// the tenant (`dedicated_to`) in the same transaction.
    Dedicated,
}

/// Where the tenant lives, and why, in a sentence shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementDecision {
    pub cluster_id: String,
    pub kind: PlacementKind,
    pub reason: String,
}

/// Why no shard was chosen. Each variant names the first rule that left no candidate
/// (rules are applied in the order of `docs/placement.md`). `region: None` means the
/// request allowed any region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlacementRefusal {
    /// The request reserves no devices; a quota must be set first.
    NoQuota,
    /// No shard in scope is active.
    NoActiveShard { region: Option<String> },
    /// Active shards exist, but none serves the plan.
    NoShardForPlan {
        plan: String,
        region: Option<String>,
    },
    /// A dedicated tenant needs an empty shard that is not reserved for someone else.
    NoEmptyShardToDedicate { region: Option<String> },
    /// Every active shard serving the plan is reserved for another tenant.
    OnlyDedicatedShards {
        plan: String,
        region: Option<String>,
    },
    /// Shards would take the tenant, but none has room for its quota. The largest
    /// headroom among them is reported so the operator sees how far off it is.
    NoRoom {
        region: Option<String>,
        dedicated: bool,
        requested: u32,
        largest_headroom: u64,
        largest_cluster_id: String,
    },
}

fn in_region(region: &Option<String>) -> String {
    match region {
        Some(r) => format!("in region {r}"),
        None => "in any region".to_string(),
    }
}

impl fmt::Display for PlacementRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PlacementRefusal as R;
        match self {
            R::NoQuota => f.write_str(
                "Set a device quota of at least 1 before placing the tenant: placement \
                 reserves that many devices on a shard.",
            ),
            R::NoActiveShard { region } => write!(
                f,
                "No active shard {} accepts new tenants.",
                in_region(region)
            ),
            R::NoShardForPlan { plan, region } => write!(
                f,
                "No active shard {} serves the {plan} plan.",
                in_region(region)
            ),
            R::NoEmptyShardToDedicate { region } => write!(
                f,
                "No empty shard is available to dedicate to this tenant {}.",
                in_region(region)
            ),
            R::OnlyDedicatedShards { plan, region } => write!(
                f,
                "Every active shard {} that serves the {plan} plan is dedicated to another tenant.",
                in_region(region)
            ),
            R::NoRoom {
                region,
                dedicated,
                requested,
                largest_headroom,
                largest_cluster_id,
            } => {
                let (shard, more) = if *dedicated {
                    ("empty shard", "")
                } else {
                    ("active shard", " more")
                };
                write!(
                    f,
                    "No {shard} {} has room for {requested}{more} devices \
                     (largest headroom: {largest_headroom} on {largest_cluster_id}).",
                    in_region(region)
                )
            }
        }
    }
}

impl std::error::Error for PlacementRefusal {}

impl From<PlacementRefusal> for AppError {
    fn from(refusal: PlacementRefusal) -> AppError {
        match refusal {
            PlacementRefusal::NoQuota => AppError::Invalid(refusal.to_string()),
            // The request is fine; the service's shards cannot take it right now.
            other => AppError::Conflict(other.to_string()),
        }
    }
}

/// Places a tenant. See the module documentation and `docs/placement.md`.
///
/// The inputs are a snapshot: the caller must read them and record the decision under
/// one lock (e.g. `select … for update` on the candidate shards), or two tenants
/// created at the same moment could both take the last headroom of a shard.
pub fn place(
    request: &PlacementRequest,
    shards: &[ShardCandidate],
) -> Result<PlacementDecision, PlacementRefusal> {
    if let Some(current) = &request.current_shard {
        return Ok(keep(current, shards));
    }
    if request.node_quota == 0 {
        return Err(PlacementRefusal::NoQuota);
    }
    let scope = (!request.any_region).then(|| request.region.clone());

    // Each rule narrows the candidates; the first one to leave none names the refusal.
    let active: Vec<&ShardCandidate> = shards
        .iter()
        .filter(|s| s.status == ShardStatus::Active)
        .filter(|s| request.any_region || s.region == request.region)
        .collect();
    if active.is_empty() {
        return Err(PlacementRefusal::NoActiveShard { region: scope });
    }

    let for_plan: Vec<&ShardCandidate> = active
        .into_iter()
        .filter(|s| s.plans.serves(&request.plan))
        .collect();
    if for_plan.is_empty() {
        return Err(PlacementRefusal::NoShardForPlan {
            plan: request.plan.clone(),
            region: scope,
        });
    }

    let compatible: Vec<&ShardCandidate> = for_plan
        .into_iter()
        .filter(|s| dedication_allows(request, s))
        .collect();
    if compatible.is_empty() {
        return Err(if request.dedicated {
            PlacementRefusal::NoEmptyShardToDedicate { region: scope }
        } else {
            PlacementRefusal::OnlyDedicatedShards {
                plan: request.plan.clone(),
                region: scope,
            }
        });
    }

    let fitting: Vec<&ShardCandidate> = compatible
        .iter()
        .copied()
        .filter(|s| s.has_room_for(request.node_quota))
        .collect();
    let Some(chosen) = fitting.into_iter().min_by_key(|s| rank(request, s)) else {
        // `compatible` is not empty, so there is a largest headroom to report.
        let largest = compatible
            .iter()
            .min_by_key(|s| (Reverse(s.headroom()), &s.cluster_id));
        return Err(PlacementRefusal::NoRoom {
            region: scope,
            dedicated: request.dedicated,
            requested: request.node_quota,
            largest_headroom: largest.map_or(0, |s| s.headroom()),
            largest_cluster_id: largest.map_or_else(String::new, |s| s.cluster_id.clone()),
        });
    };
    Ok(decide(request, chosen))
}

/// Dedication, both ways: a shard reserved for a tenant takes only that tenant, and
/// only while it holds no one else; a dedicated tenant gets only an empty shard.
fn dedication_allows(request: &PlacementRequest, shard: &ShardCandidate) -> bool {
    match &shard.dedicated_to {
        Some(owner) => *owner == request.tenant && shard.is_empty(),
        None => !request.dedicated || shard.is_empty(),
    }
}

/// The order among shards that would all take the tenant; the smallest key wins.
/// Every component is a property of the shard, and `cluster_id` is unique, so the
/// winner does not depend on the order of the input.
fn rank<'a>(
    request: &PlacementRequest,
    shard: &'a ShardCandidate,
) -> (bool, bool, bool, Reverse<u64>, &'a str) {
    (
        // 1. A shard the operator reserved for this very tenant.
        shard.dedicated_to.is_none(),
        // 2. The tenant's own region (only decides anything when `any_region`).
        shard.region != request.region,
        // 3. Shards already in use before empty ones: empty shards are what dedicated
        //    tenants and tenants too big for a shared shard's headroom need.
        shard.is_empty(),
        // 4. The most room left after reserving the quota: spreads tenants so each
        //    Headscale stays small and each tenant has room to grow in place.
        Reverse(shard.headroom() - u64::from(request.node_quota)),
        // 5. Ties: the smallest cluster id.
        shard.cluster_id.as_str(),
    )
}

fn decide(request: &PlacementRequest, shard: &ShardCandidate) -> PlacementDecision {
    let quota = request.node_quota;
    let free_after = shard.headroom() - u64::from(quota);
    let room = format!(
        "{free_after} of {} devices free after reserving {quota}",
        shard.node_capacity
    );
    let id = &shard.cluster_id;
    let region = &shard.region;
    let where_ = if *region == request.region {
        format!("in region {region}")
    } else {
        format!(
            "in region {region} (no shard in the requested region {} could take it)",
            request.region
        )
    };
    let (kind, reason) = if shard.dedicated_to.is_some() {
        (
            PlacementKind::Dedicated,
            format!(
                "Placed on {id} in region {region}, the shard reserved for this tenant ({room})."
            ),
        )
    } else if request.dedicated {
        (
            PlacementKind::Dedicated,
            format!(
                "Dedicated {id} to this tenant {where_}: of the empty shards there that \
                 could take it, it has the most room ({room})."
            ),
        )
    } else if shard.is_empty() {
        (
            PlacementKind::Shared,
            format!(
                "Placed on {id} {where_}, an empty shard: no shard already in use in region \
                 {region} had room for {quota} more devices ({room})."
            ),
        )
    } else {
        (
            PlacementKind::Shared,
            format!(
                "Placed on {id} {where_}: of the shards in use there that could take this \
                 tenant, it has the most room left ({room})."
            ),
        )
    };
    PlacementDecision {
        cluster_id: id.clone(),
        kind,
        reason,
    }
}

/// Stickiness: a placed tenant stays, whatever its shard's state. Moving a tenant means
/// moving its nodes to another Headscale, which only an operator may decide to do.
fn keep(current: &str, shards: &[ShardCandidate]) -> PlacementDecision {
    let known = shards.iter().find(|s| s.cluster_id == current);
    let reason = match known.map(|s| s.status) {
        Some(ShardStatus::Active) => {
            format!("Stays on {current}, where the tenant is already placed: placement is sticky.")
        }
        Some(status) => format!(
            "Stays on {current}, where the tenant is already placed: {current} is {status}, \
             but moving a tenant is an explicit operator action.",
            status = status.as_str()
        ),
        None => format!(
            "Stays on {current}, where the tenant is already placed ({current} is not among \
             the shards considered): moving a tenant is an explicit operator action."
        ),
    };
    PlacementDecision {
        cluster_id: current.to_string(),
        kind: PlacementKind::Kept,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> TenantCode {
        TenantCode::parse(s).unwrap()
    }

    /// An active shard in `eu-west` serving any plan, empty, with `capacity` nodes.
    fn shard(id: &str, capacity: u32) -> ShardCandidate {
        ShardCandidate {
            cluster_id: id.into(),
            region: "eu-west".into(),
            status: ShardStatus::Active,
            node_capacity: capacity,
            committed_nodes: 0,
            node_count: 0,
            tenant_count: 0,
            dedicated_to: None,
            plans: ServedPlans::Any,
        }
    }

    /// A shard already hosting tenants that together reserve `committed` nodes.
    fn used(id: &str, capacity: u32, committed: u32) -> ShardCandidate {
        ShardCandidate {
            committed_nodes: committed,
            node_count: committed / 2,
            tenant_count: 3,
            ..shard(id, capacity)
        }
    }

    fn request(quota: u32) -> PlacementRequest {
        PlacementRequest::new(code("tacme"), "starter", "eu-west", quota)
    }

    fn placed_on(request: &PlacementRequest, shards: &[ShardCandidate]) -> String {
        match place(request, shards) {
            Ok(d) => d.cluster_id,
            Err(e) => panic!("expected a placement, got: {e}"),
        }
    }

    fn refusal(request: &PlacementRequest, shards: &[ShardCandidate]) -> String {
        match place(request, shards) {
            Ok(d) => panic!("expected a refusal, got {} ({})", d.cluster_id, d.reason),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn enterprise_plans_are_dedicated_by_default() {
        assert!(PlacementRequest::new(code("tbig"), "enterprise", "eu-west", 10).dedicated);
        assert!(!PlacementRequest::new(code("tsmall"), "starter", "eu-west", 10).dedicated);
        assert!(!plan_gets_dedicated_shard("business"));
    }

    #[test]
    fn only_shards_in_the_tenant_region_are_considered() {
        let shards = [
            ShardCandidate {
                region: "us-east".into(),
                ..shard("hs-a", 1000)
            },
            shard("hs-b", 100),
        ];
        assert_eq!(placed_on(&request(50), &shards), "hs-b");
        let shards = [ShardCandidate {
            region: "us-east".into(),
            ..shard("hs-a", 1000)
        }];
        assert_eq!(
            refusal(&request(50), &shards),
            "No active shard in region eu-west accepts new tenants."
        );
    }

    #[test]
    fn any_region_prefers_the_requested_region_then_falls_back() {
        let mut req = request(50);
        req.any_region = true;
        let far = ShardCandidate {
            region: "us-east".into(),
            ..shard("hs-a", 1000)
        };
        let near = shard("hs-b", 100);
        assert_eq!(placed_on(&req, &[far.clone(), near]), "hs-b");

        let full_near = used("hs-b", 100, 90);
        let d = place(&req, &[far, full_near]).unwrap();
        assert_eq!(d.cluster_id, "hs-a");
        assert!(
            d.reason
                .contains("no shard in the requested region eu-west could take it"),
            "{}",
            d.reason
        );
        assert_eq!(
            refusal(&req, &[]),
            "No active shard in any region accepts new tenants."
        );
    }

    #[test]
    fn draining_and_disabled_shards_take_no_new_tenants() {
        let shards = [
            ShardCandidate {
                status: ShardStatus::Draining,
                ..shard("hs-a", 1000)
            },
            ShardCandidate {
                status: ShardStatus::Disabled,
                ..shard("hs-b", 1000)
            },
        ];
        assert_eq!(
            refusal(&request(10), &shards),
            "No active shard in region eu-west accepts new tenants."
        );
        let mut with_active = shards.to_vec();
        with_active.push(used("hs-c", 100, 80));
        assert_eq!(placed_on(&request(10), &with_active), "hs-c");
    }

    #[test]
    fn shards_tagged_for_plans_take_only_those_plans() {
        let business_only = ShardCandidate {
            plans: ServedPlans::only(["business"]),
            ..shard("hs-a", 1000)
        };
        assert_eq!(
            refusal(&request(10), std::slice::from_ref(&business_only)),
            "No active shard in region eu-west serves the starter plan."
        );
        let mut business = request(10);
        business.plan = "business".into();
        assert_eq!(placed_on(&business, &[business_only]), "hs-a");
    }

    #[test]
    fn capacity_is_never_exceeded_but_can_be_filled_exactly() {
        let shards = [used("hs-a", 300, 250)];
        assert_eq!(placed_on(&request(50), &shards), "hs-a");
        assert_eq!(
            refusal(&request(51), &shards),
            "No active shard in region eu-west has room for 51 more devices \
             (largest headroom: 50 on hs-a)."
        );
    }

    #[test]
    fn no_room_names_the_largest_headroom() {
        let shards = [
            used("hs-a", 300, 280),
            used("hs-c", 300, 220),
            used("hs-b", 300, 220),
            // Plenty of room, but draining: not worth mentioning.
            ShardCandidate {
                status: ShardStatus::Draining,
                ..shard("hs-d", 1000)
            },
        ];
        assert_eq!(
            refusal(&request(150), &shards),
            "No active shard in region eu-west has room for 150 more devices \
             (largest headroom: 80 on hs-b)."
        );
    }

    #[test]
    fn registered_nodes_count_when_they_exceed_the_quotas() {
        // Quotas promise 100, but 290 nodes are there (reusable keys slipped over).
        let over = ShardCandidate {
            node_count: 290,
            ..used("hs-a", 300, 100)
        };
        assert_eq!(over.headroom(), 10);
        assert_eq!(
            refusal(&request(20), &[over]),
            "No active shard in region eu-west has room for 20 more devices \
             (largest headroom: 10 on hs-a)."
        );
    }

    #[test]
    fn shared_tenants_spread_over_shards_in_use_by_most_room_left() {
        let shards = [
            used("hs-a", 300, 200),
            used("hs-b", 300, 100),
            shard("hs-e", 1000),
        ];
        let d = place(&request(50), &shards).unwrap();
        assert_eq!(d.cluster_id, "hs-b");
        assert_eq!(d.kind, PlacementKind::Shared);
        assert_eq!(
            d.reason,
            "Placed on hs-b in region eu-west: of the shards in use there that could take \
             this tenant, it has the most room left (150 of 300 devices free after reserving 50)."
        );
    }

    #[test]
    fn an_empty_shard_is_opened_only_when_no_shard_in_use_fits() {
        let shards = [used("hs-a", 300, 280), shard("hs-e", 300)];
        let d = place(&request(50), &shards).unwrap();
        assert_eq!(d.cluster_id, "hs-e");
        assert_eq!(d.kind, PlacementKind::Shared);
        assert_eq!(
            d.reason,
            "Placed on hs-e in region eu-west, an empty shard: no shard already in use in \
             region eu-west had room for 50 more devices (250 of 300 devices free after \
             reserving 50)."
        );
    }

    #[test]
    fn ties_are_broken_by_cluster_id_whatever_the_input_order() {
        let a = used("hs-a", 300, 100);
        let b = used("hs-b", 300, 100);
        assert_eq!(placed_on(&request(10), &[a.clone(), b.clone()]), "hs-a");
        assert_eq!(placed_on(&request(10), &[b, a]), "hs-a");
    }

    #[test]
    fn dedicated_tenants_get_an_empty_unreserved_shard() {
        let req = PlacementRequest::new(code("tbig"), "enterprise", "eu-west", 200);
        let shards = [
            used("hs-a", 1000, 100),
            ShardCandidate {
                dedicated_to: Some(code("tother")),
                ..shard("hs-b", 1000)
            },
            shard("hs-c", 300),
            shard("hs-d", 500),
        ];
        let d = place(&req, &shards).unwrap();
        assert_eq!(d.cluster_id, "hs-d");
        assert_eq!(d.kind, PlacementKind::Dedicated);
        assert_eq!(
            d.reason,
            "Dedicated hs-d to this tenant in region eu-west: of the empty shards there that \
             could take it, it has the most room (300 of 500 devices free after reserving 200)."
        );
    }

    #[test]
    fn dedicated_tenants_are_refused_when_no_empty_shard_is_left() {
        let req = PlacementRequest::new(code("tbig"), "enterprise", "eu-west", 200);
        let shards = [
            used("hs-a", 1000, 100),
            ShardCandidate {
                dedicated_to: Some(code("tother")),
                ..shard("hs-b", 1000)
            },
        ];
        assert_eq!(
            refusal(&req, &shards),
            "No empty shard is available to dedicate to this tenant in region eu-west."
        );
        assert_eq!(
            refusal(&req, &[shard("hs-c", 100)]),
            "No empty shard in region eu-west has room for 200 devices \
             (largest headroom: 100 on hs-c)."
        );
    }

    #[test]
    fn an_explicit_dedicated_flag_works_on_any_plan() {
        let mut req = request(20);
        req.dedicated = true;
        let shards = [used("hs-a", 1000, 100), shard("hs-b", 100)];
        let d = place(&req, &shards).unwrap();
        assert_eq!(
            (d.cluster_id.as_str(), d.kind),
            ("hs-b", PlacementKind::Dedicated)
        );
    }

    #[test]
    fn shared_tenants_never_land_on_another_tenants_shard() {
        let shards = [ShardCandidate {
            dedicated_to: Some(code("tother")),
            ..shard("hs-a", 1000)
        }];
        assert_eq!(
            refusal(&request(10), &shards),
            "Every active shard in region eu-west that serves the starter plan is dedicated \
             to another tenant."
        );
    }

    #[test]
    fn a_shard_reserved_for_the_tenant_comes_first() {
        let reserved = ShardCandidate {
            dedicated_to: Some(code("tacme")),
            ..shard("hs-z", 100)
        };
        let shards = [used("hs-a", 1000, 0), shard("hs-b", 1000), reserved.clone()];
        let d = place(&request(20), &shards).unwrap();
        assert_eq!(d.cluster_id, "hs-z");
        assert_eq!(d.kind, PlacementKind::Dedicated);
        assert_eq!(
            d.reason,
            "Placed on hs-z in region eu-west, the shard reserved for this tenant \
             (80 of 100 devices free after reserving 20)."
        );
        // A reservation that somehow already hosts tenants is not used.
        let crowded = ShardCandidate {
            tenant_count: 1,
            ..reserved
        };
        assert_eq!(
            placed_on(&request(20), &[crowded, shard("hs-b", 50)]),
            "hs-b"
        );
    }

    #[test]
    fn placed_tenants_stay_put_whatever_their_shard_state() {
        let mut req = request(500);
        req.current_shard = Some("hs-a".into());
        let active = used("hs-a", 100, 100);
        let d = place(&req, std::slice::from_ref(&active)).unwrap();
        assert_eq!(
            (d.cluster_id.as_str(), d.kind),
            ("hs-a", PlacementKind::Kept)
        );
        assert_eq!(
            d.reason,
            "Stays on hs-a, where the tenant is already placed: placement is sticky."
        );

        let disabled = ShardCandidate {
            status: ShardStatus::Disabled,
            ..active
        };
        let d = place(&req, &[disabled, shard("hs-b", 1000)]).unwrap();
        assert_eq!(
            (d.cluster_id.as_str(), d.kind),
            ("hs-a", PlacementKind::Kept)
        );
        assert_eq!(
            d.reason,
            "Stays on hs-a, where the tenant is already placed: hs-a is disabled, but moving \
             a tenant is an explicit operator action."
        );

        let d = place(&req, &[shard("hs-b", 1000)]).unwrap();
        assert_eq!(d.cluster_id, "hs-a");
        assert!(
            d.reason.contains("not among the shards considered"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn a_zero_quota_is_refused_as_invalid_input() {
        let err = place(&request(0), &[shard("hs-a", 100)]).unwrap_err();
        assert_eq!(err, PlacementRefusal::NoQuota);
        assert!(matches!(AppError::from(err), AppError::Invalid(_)));
        let no_room = place(&request(200), &[shard("hs-a", 100)]).unwrap_err();
        assert_eq!(
            AppError::from(no_room.clone()),
            AppError::Conflict(no_room.to_string())
        );
    }

    #[test]
    fn rules_apply_in_order_so_the_refusal_names_the_first_that_failed() {
        // Serves another plan *and* too small: the plan is what is reported.
        let shards = [ShardCandidate {
            plans: ServedPlans::only(["business"]),
            ..shard("hs-a", 5)
        }];
        assert_eq!(
            place(&request(10), &shards).unwrap_err(),
            PlacementRefusal::NoShardForPlan {
                plan: "starter".into(),
                region: Some("eu-west".into()),
            }
        );
    }
}

#[cfg(test)]
mod properties {
    //! Property tests: the rules hold for any set of shards, checked against a
    //! brute-force statement of the rules written independently of `place`.

    use super::*;
    use proptest::prelude::*;

    const SELF: &str = "tself";
    const OTHER: &str = "tother";
    const REGIONS: [&str; 2] = ["eu-west", "us-east"];
    const PLANS: [&str; 3] = ["starter", "business", "enterprise"];

    fn code(s: &str) -> TenantCode {
        TenantCode::parse(s).unwrap()
    }

    fn served_plans() -> impl Strategy<Value = ServedPlans> {
        prop_oneof![
            3 => Just(ServedPlans::Any),
            1 => Just(ServedPlans::only(["starter"])),
            1 => Just(ServedPlans::only(["business", "enterprise"])),
        ]
    }

    fn dedicated_to() -> impl Strategy<Value = Option<TenantCode>> {
        prop_oneof![
            4 => Just(None),
            1 => Just(Some(code(SELF))),
            1 => Just(Some(code(OTHER))),
        ]
    }

    /// Shard attributes; cluster ids are assigned by position so they are unique.
    fn shard_without_id() -> impl Strategy<Value = ShardCandidate> {
        (
            prop::sample::select(REGIONS.to_vec()),
            prop_oneof![
                4 => Just(ShardStatus::Active),
                1 => Just(ShardStatus::Draining),
                1 => Just(ShardStatus::Disabled),
            ],
            // Capacities, promises and real counts overlap, so shards are sometimes
            // full, sometimes over-full and sometimes roomy.
            0u32..=120,
            0u32..=70,
            0u32..=70,
            prop_oneof![Just(0u32), 1u32..=3],
            dedicated_to(),
            served_plans(),
        )
            .prop_map(
                |(region, status, cap, committed, nodes, tenants, dedicated_to, plans)| {
                    ShardCandidate {
                        cluster_id: String::new(),
                        region: region.into(),
                        status,
                        node_capacity: cap,
                        committed_nodes: committed,
                        node_count: nodes,
                        tenant_count: tenants,
                        dedicated_to,
                        plans,
                    }
                },
            )
    }

    fn shards() -> impl Strategy<Value = Vec<ShardCandidate>> {
        prop::collection::vec(shard_without_id(), 0..10).prop_map(|mut v| {
            // Ids in scrambled order, so the position never hints at the ranking.
            for (i, s) in v.iter_mut().enumerate() {
                s.cluster_id = format!("hs-{}", (i * 7 + 3) % 10);
            }
            v
        })
    }

    fn new_request() -> impl Strategy<Value = PlacementRequest> {
        (
            prop::sample::select(PLANS.to_vec()),
            prop::sample::select(REGIONS.to_vec()),
            any::<bool>(),
            prop_oneof![1 => Just(0u32), 12 => 1u32..=40],
            prop::bool::weighted(0.2),
        )
            .prop_map(|(plan, region, any_region, quota, dedicated)| {
                let mut r = PlacementRequest::new(code(SELF), plan, region, quota);
                r.any_region = any_region;
                r.dedicated = r.dedicated || dedicated;
                r
            })
    }

    /// Shards plus the same shards in another order.
    fn shards_and_shuffle() -> impl Strategy<Value = (Vec<ShardCandidate>, Vec<ShardCandidate>)> {
        shards().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    }

    /// The rules, stated plainly: may this shard take this new tenant?
    fn satisfies_all_rules(r: &PlacementRequest, s: &ShardCandidate) -> bool {
        let active = s.status == ShardStatus::Active;
        let region = r.any_region || s.region == r.region;
        let plan = match &s.plans {
            ServedPlans::Any => true,
            ServedPlans::Only(p) => p.contains(&r.plan),
        };
        let dedication = match &s.dedicated_to {
            Some(owner) => owner.as_str() == SELF && s.tenant_count == 0,
            None => !r.dedicated || s.tenant_count == 0,
        };
        let used = s.committed_nodes.max(s.node_count) as u64;
        let capacity = used + r.node_quota as u64 <= s.node_capacity as u64;
        active && region && plan && dedication && capacity
    }

    fn chosen<'a>(d: &PlacementDecision, shards: &'a [ShardCandidate]) -> &'a ShardCandidate {
        shards
            .iter()
            .find(|s| s.cluster_id == d.cluster_id)
            .expect("a new placement names one of the candidates")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_order_of_the_candidates_never_matters(
            r in new_request(),
            (shards, shuffled) in shards_and_shuffle(),
        ) {
            prop_assert_eq!(place(&r, &shards), place(&r, &shuffled));
        }

        #[test]
        fn capacity_is_never_exceeded(r in new_request(), shards in shards()) {
            if let Ok(d) = place(&r, &shards) {
                let s = chosen(&d, &shards);
                let used = s.committed_nodes.max(s.node_count) as u64;
                prop_assert!(used + r.node_quota as u64 <= s.node_capacity as u64);
            }
        }

        #[test]
        fn only_active_shards_in_scope_receive_tenants(r in new_request(), shards in shards()) {
            if let Ok(d) = place(&r, &shards) {
                let s = chosen(&d, &shards);
                prop_assert_eq!(s.status, ShardStatus::Active);
                prop_assert!(r.any_region || s.region == r.region);
                prop_assert!(s.plans.serves(&r.plan));
            }
        }

        #[test]
        fn dedicated_shards_are_honoured(r in new_request(), shards in shards()) {
            if let Ok(d) = place(&r, &shards) {
                let s = chosen(&d, &shards);
                // Never a shard reserved for someone else.
                prop_assert!(s.dedicated_to.as_ref().is_none_or(|t| t.as_str() == SELF));
                if r.dedicated {
                    // A dedicated tenant gets an empty shard, unreserved or its own.
                    prop_assert_eq!(s.tenant_count, 0);
                    prop_assert_eq!(d.kind, PlacementKind::Dedicated);
                }
                if s.dedicated_to.is_some() {
                    prop_assert_eq!(d.kind, PlacementKind::Dedicated);
                    prop_assert_eq!(s.tenant_count, 0);
                }
                if d.kind == PlacementKind::Shared {
                    prop_assert!(!r.dedicated && s.dedicated_to.is_none());
                }
            }
        }

        #[test]
        fn refuses_only_when_no_shard_fits(r in new_request(), shards in shards()) {
            let fitting: Vec<&ShardCandidate> =
                shards.iter().filter(|s| satisfies_all_rules(&r, s)).collect();
            match place(&r, &shards) {
                Ok(d) => {
                    prop_assert!(satisfies_all_rules(&r, chosen(&d, &shards)));
                }
                Err(PlacementRefusal::NoQuota) => prop_assert_eq!(r.node_quota, 0),
                Err(refusal) => {
                    prop_assert!(fitting.is_empty(), "refused ({}) although {:?} fits", refusal, fitting);
                    if let PlacementRefusal::NoRoom { largest_headroom, requested, .. } = refusal {
                        prop_assert!(largest_headroom < requested as u64);
                    }
                }
            }
        }

        #[test]
        fn the_documented_order_picks_the_winner(r in new_request(), shards in shards()) {
            // docs/placement.md: reserved for the tenant, requested region, in use before
            // empty, most room left after the reservation, smallest cluster id.
            let best = shards
                .iter()
                .filter(|s| satisfies_all_rules(&r, s))
                .min_by(|a, b| {
                    let key = |s: &ShardCandidate| {
                        let room = s.node_capacity as u64
                            - s.committed_nodes.max(s.node_count) as u64
                            - r.node_quota as u64;
                        (
                            s.dedicated_to.is_none(),
                            s.region != r.region,
                            s.tenant_count == 0,
                            std::cmp::Reverse(room),
                            s.cluster_id.clone(),
                        )
                    };
                    key(a).cmp(&key(b))
                });
            if r.node_quota > 0 {
                let got = place(&r, &shards).ok().map(|d| d.cluster_id);
                prop_assert_eq!(got, best.map(|s| s.cluster_id.clone()));
            }
        }

        #[test]
        fn placed_tenants_keep_their_shard(
            r in new_request(),
            shards in shards(),
            pick in any::<prop::sample::Index>(),
            unknown in any::<bool>(),
        ) {
            let current = if unknown || shards.is_empty() {
                "hs-gone".to_string()
            } else {
                shards[pick.index(shards.len())].cluster_id.clone()
            };
            let r = PlacementRequest { current_shard: Some(current.clone()), ..r };
            let d = place(&r, &shards).expect("a placed tenant is never refused");
            prop_assert_eq!(d.cluster_id, current);
            prop_assert_eq!(d.kind, PlacementKind::Kept);
        }

        #[test]
        fn placing_again_after_recording_changes_nothing(r in new_request(), shards in shards()) {
            if let Ok(first) = place(&r, &shards) {
                // Record the decision the way the caller would.
                let mut after = shards.clone();
                if let Some(s) = after.iter_mut().find(|s| s.cluster_id == first.cluster_id) {
                    s.committed_nodes += r.node_quota;
                    s.tenant_count += 1;
                    if first.kind == PlacementKind::Dedicated {
                        s.dedicated_to = Some(r.tenant.clone());
                    }
                }
                let again = PlacementRequest { current_shard: Some(first.cluster_id.clone()), ..r };
                prop_assert_eq!(place(&again, &after).map(|d| d.cluster_id), Ok(first.cluster_id));
            }
        }
    }
}
