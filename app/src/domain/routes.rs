//! Subnet routes and exit routes, and the rule that keeps tenants on one shard from
//! breaking each other's routes (DESIGN.md §2): Headscale elects one primary router per
//! prefix for the whole shard, so a tenant may not approve a subnet route that overlaps
//! a route another tenant on the same shard has approved. Exit routes (`0.0.0.0/0`,
//! `::/0`) are not elected that way (each client picks its exit node), so they never
//! conflict.

use std::net::IpAddr;

/// An IP prefix (`10.42.0.0/16`), normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

pub const EXIT_ROUTES: [&str; 2] = ["0.0.0.0/0", "::/0"];

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let bad = || {
            format!("“{s}” is not a route: write it as an address and a prefix length, like 10.1.0.0/24.")
        };
        let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(bad());
        }
        Ok(Prefix {
            addr: mask(addr, len),
            len,
        })
    }

    pub fn is_exit(&self) -> bool {
        self.len == 0
    }

    /// Whether every address of `other` is in this prefix.
    pub fn contains(&self, other: &Prefix) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && self.len <= other.len
            && mask(other.addr, self.len) == self.addr
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let len = self.len.min(other.len);
        mask(self.addr, len) == mask(other.addr, len)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The first route of another tenant on the shard that `route` overlaps, if any (exit
/// routes never conflict). `others` are other tenants' approved routes.
pub fn conflict<'a>(route: &Prefix, others: &'a [String]) -> Option<&'a str> {
    if route.is_exit() {
        return None;
    }
    others
        .iter()
        .map(String::as_str)
        .find(|o| Prefix::parse(o).is_ok_and(|p| !p.is_exit() && p.overlaps(route)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).unwrap()
    }

    #[test]
    fn prefixes_parse_and_normalise() {
        assert_eq!(p("10.42.1.7/16").to_string(), "10.42.0.0/16");
        assert_eq!(p("fd00::1/64").to_string(), "fd00::/64");
        assert!(p("0.0.0.0/0").is_exit() && p("::/0").is_exit());
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "x/8", "10.0.0.0/-1"] {
            assert!(Prefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_is_one_way() {
        assert!(p("10.1.0.0/16").contains(&p("10.1.2.0/24")));
        assert!(!p("10.1.2.0/24").contains(&p("10.1.0.0/16")));
        assert!(p("10.1.0.0/16").contains(&p("10.1.0.0/16")));
        assert!(!p("10.0.0.0/8").contains(&p("fd00::/8")));
    }

    #[test]
    fn overlap_is_sharing_any_address() {
        assert!(p("10.42.0.0/16").overlaps(&p("10.42.3.0/24")));
        assert!(p("10.42.3.0/24").overlaps(&p("10.42.0.0/16")));
        assert!(!p("10.42.0.0/16").overlaps(&p("10.43.0.0/16")));
        assert!(!p("10.0.0.0/8").overlaps(&p("fd00::/8")));
    }

    #[test]
    fn the_k3s_default_pod_cidr_of_two_tenants_conflicts_exit_routes_never() {
        let others = vec!["192.168.1.0/24".to_string(), "10.42.0.0/16".to_string()];
        assert_eq!(conflict(&p("10.42.0.0/16"), &others), Some("10.42.0.0/16"));
        assert_eq!(conflict(&p("10.42.7.0/24"), &others), Some("10.42.0.0/16"));
        assert_eq!(conflict(&p("10.43.0.0/16"), &others), None);
        let exits = vec!["0.0.0.0/0".to_string()];
        assert_eq!(conflict(&p("0.0.0.0/0"), &exits), None);
        assert_eq!(conflict(&p("10.0.0.0/8"), &exits), None);
    }
}
