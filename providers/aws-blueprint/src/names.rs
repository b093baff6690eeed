//! AWS resource names: the `name` attributes AWS itself keys on (security
//! groups, the API load balancer, launch templates, auto scaling groups).
//!
//! These are distinct from `Name` tags (see `tags.rs`): a name is part of the
//! resource's identity on AWS, often limited in length, and changing it
//! replaces the resource.

/// AWS's limit on a classic load balancer's name.
pub const ELB_NAME_MAX: usize = 32;
/// AWS's limit on a launch template's name (Amazon EC2 API Reference,
/// CreateLaunchTemplate, LaunchTemplateName: 3 to 128 characters).
pub const LAUNCH_TEMPLATE_NAME_MAX: usize = 128;
/// AWS's limit on an auto scaling group's name (Auto Scaling API Reference,
/// CreateAutoScalingGroup, AutoScalingGroupName: 1 to 255 characters).
pub const AUTOSCALING_GROUP_NAME_MAX: usize = 255;

/// `<cluster>-<role>`, e.g. `demo-control-plane` for a security group.
pub fn security_group(cluster: &str, role: &str) -> String {
    format!("{cluster}-{role}")
}

/// `<cluster>-<pool>`: the launch template and auto scaling group of a pool.
pub fn pool(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}")
}

/// `<cluster>-apiserver`, or, when that exceeds AWS's 32 characters, a
/// readable prefix of it, `-`, and 8 hex digits of a stable hash of the
/// whole name (so two long cluster names that share a prefix still differ).
pub fn apiserver_elb(cluster: &str) -> String {
    let full = format!("{cluster}-apiserver");
    if full.len() <= ELB_NAME_MAX {
        return full;
    }
    let hash = format!("{:08x}", fnv1a_32(full.as_bytes()));
    // Cluster names are ASCII, so byte slicing is on a character boundary.
    // ELB names may not end with `-` before the separator either.
    let prefix = full[..ELB_NAME_MAX - 1 - hash.len()].trim_end_matches('-');
    format!("{prefix}-{hash}")
}

/// AWS's limit on a security group's name.
pub const SECURITY_GROUP_NAME_MAX: usize = 255;

/// The name of a raw `[resource.aws_security_group.NAME]` written without
/// one: `skyplan-<cluster>-<NAME>` (`skyplan-<NAME>` in a spec without a
/// cluster), as Terraform names an unnamed group `terraform-...`. The fixed
/// prefix keeps it from starting with `sg-` (which AWS refuses) and apart
/// from the cluster's own `<cluster>-<role>` groups; it is deterministic, so
/// every plan derives the same name. Resource names hold only letters,
/// digits, `_` and `-`, all allowed in a group name; a name over AWS's 255
/// characters is cut and ends in 8 hex digits of a hash of the whole.
pub fn raw_security_group(cluster: Option<&str>, name: &str) -> String {
    let full = match cluster {
        Some(cluster) => format!("skyplan-{cluster}-{name}"),
        None => format!("skyplan-{name}"),
    };
    if full.len() <= SECURITY_GROUP_NAME_MAX {
        return full;
    }
    let hash = format!("{:08x}", fnv1a_32(full.as_bytes()));
    // ASCII only (see above), so byte slicing is on a character boundary.
    format!("{}-{hash}", &full[..SECURITY_GROUP_NAME_MAX - 1 - hash.len()])
}

/// FNV-1a, 32 bits: tiny and, unlike std's hasher, fixed forever, which a
/// name stored in the cloud needs.
fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, &b| (hash ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_security_groups_get_a_derived_name_within_aws_limits() {
        assert_eq!(raw_security_group(Some("demo"), "monitoring"), "skyplan-demo-monitoring");
        assert_eq!(raw_security_group(None, "monitoring"), "skyplan-monitoring");
        // A cluster called `sg` must not give a name AWS refuses.
        assert!(!raw_security_group(Some("sg"), "x").starts_with("sg-"));
        let long = "n".repeat(300);
        let a = raw_security_group(Some("demo"), &long);
        assert_eq!(a.len(), SECURITY_GROUP_NAME_MAX);
        assert_eq!(a, raw_security_group(Some("demo"), &long), "deterministic");
        assert_ne!(a, raw_security_group(Some("demo"), &format!("{long}m")), "long names still differ");
    }

    #[test]
    fn short_names_are_plain() {
        assert_eq!(apiserver_elb("demo"), "demo-apiserver");
        // 22 + 10 = 32: exactly at the limit.
        let name = "a".repeat(22);
        assert_eq!(apiserver_elb(&name), format!("{name}-apiserver"));
    }

    #[test]
    fn long_names_are_hashed_down_to_32() {
        let elb = apiserver_elb("abcdefghijklmnopqrstuvwxyz");
        assert_eq!(elb.len(), ELB_NAME_MAX, "{elb}");
        assert!(elb.starts_with("abcdefghijklmnopqrstuvw-"), "{elb}");
        let (_, hash) = elb.rsplit_once('-').unwrap();
        assert_eq!(hash.len(), 8);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        // Stable forever: the name is stored in the cloud, so a change of
        // algorithm would replace every long-named cluster's load balancer.
        let name = "platform-production-eu-west-blue";
        assert_eq!(name.len(), 32);
        assert_eq!(apiserver_elb(name), "platform-production-eu-e3825b06");
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
    }

    #[test]
    fn long_names_sharing_a_prefix_differ() {
        let a = apiserver_elb("platform-production-eu-west-blue");
        let b = apiserver_elb("platform-production-eu-west-gree");
        assert_ne!(a, b);
        assert_eq!(a[..23], b[..23]);
    }

    #[test]
    fn hashed_names_do_not_hold_a_dangling_hyphen() {
        // The cut falls right after a `-`: it is dropped, not doubled.
        let elb = apiserver_elb("abcdefghijklmnopqrstuv-xyz");
        assert!(!elb.contains("--"), "{elb}");
        assert!(elb.len() <= ELB_NAME_MAX);
        assert!(!elb.starts_with('-') && !elb.ends_with('-'));
    }
}
