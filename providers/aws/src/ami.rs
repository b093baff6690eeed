//! Machine images: `ami = "auto"` (and a launch template's `image_id =
//! "auto"`) resolved at create time, and an image's root device name (which
//! a root volume size must be given for).
//!
//! "auto" is the newest available x86_64 Amazon Linux 2023 image owned by
//! Amazon in the region ([`AUTO_NAME_PATTERN`]), or, when the resource has an
//! `ami_lookup = { owner, name, architecture }` (the blueprint's cluster-api
//! images for a pool: owner `819546954734`, names such as
//! `capa-ami-ubuntu-22.04-?1.30.4-*`), the newest available hvm image of
//! that owner, name pattern and architecture. The attribute stays "auto"
//! in the state; the image actually used is recorded as `resolved_ami`, so
//! a newer image does not replace running instances on the next plan.

use aws_sdk_ec2::types::Image as Ec2Image;
use skyplan_engine::ProviderError;

use crate::clients::Clients;
use crate::ec2util::filter;
use crate::retry::Retry;

pub(crate) const AUTO: &str = "auto";
pub(crate) const AUTO_NAME_PATTERN: &str = "al2023-ami-2023.*-kernel-6.1-x86_64";

/// Whether a live `image` reads back as `"auto"`: the recorded value
/// (`prior[key]`) is `"auto"` and `image` is what it resolved to, or nothing
/// was recorded as resolved: a resource found again after a lost answer or
/// a crash (`find.rs`) runs the image `"auto"` resolved to when it was made.
pub(crate) fn reads_as_auto(prior: &serde_json::Map<String, serde_json::Value>, key: &str, image: &str) -> bool {
    prior.get(key).and_then(|v| v.as_str()) == Some(AUTO)
        && match prior.get("resolved_ami").and_then(|v| v.as_str()) {
            Some(resolved) => resolved == image,
            None => true,
        }
}

/// Which images "auto" picks from, when not Amazon Linux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub owner: String,
    /// A name pattern: `*` any characters, `?` exactly one.
    pub name: String,
    pub architecture: String,
}

/// The `ami_lookup` table of a resource's attributes.
pub(crate) const LOOKUP_FIELDS: &[crate::attrs::Field] = &[
    crate::attrs::Field::new("owner", crate::attrs::Ty::Str).required(),
    crate::attrs::Field::new("name", crate::attrs::Ty::Str).required(),
    crate::attrs::Field::new("architecture", crate::attrs::Ty::Str).required(),
];

impl Lookup {
    pub fn from_attrs(attrs: &serde_json::Map<String, serde_json::Value>) -> Result<Option<Lookup>, ProviderError> {
        let Some(table) = attrs.get("ami_lookup").filter(|v| !v.is_null()) else { return Ok(None) };
        let table = table
            .as_object()
            .ok_or_else(|| ProviderError::new(format!("`ami_lookup` must be a table, not {table}")))?;
        let field = |k: &str| {
            table
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| ProviderError::new(format!("`ami_lookup.{k}` is required")))
        };
        Ok(Some(Lookup { owner: field("owner")?, name: field("name")?, architecture: field("architecture")? }))
    }
}

/// The image "auto" stands for with `lookup`: the newest available hvm
/// image of its owner, name and architecture; an error naming all three
/// when there is none.
pub(crate) async fn newest_published(c: &Clients, lookup: &Lookup) -> Result<Image, ProviderError> {
    let out = c
        .call("DescribeImages", Retry::Standard, || {
            c.ec2
                .describe_images()
                .owners(&lookup.owner)
                .filters(filter("name", [lookup.name.clone()]))
                .filters(filter("architecture", [lookup.architecture.clone()]))
                .filters(filter("state", ["available"]))
                .filters(filter("virtualization-type", ["hvm"]))
                .send()
        })
        .await?;
    let image = newest(out.images()).ok_or_else(|| {
        ProviderError::new(format!(
            "found no available {} image named {} owned by {} in this region; cluster-api publishes \
             images for recent Kubernetes versions only: pick a published version, set `ami` on the pool, \
             or `ami_owner`/`ami_name` to where your images are",
            lookup.architecture, lookup.name, lookup.owner
        ))
    })?;
    Ok(Image {
        id: image.image_id().unwrap_or_default().to_string(),
        root_device_name: image.root_device_name().map(str::to_string),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub id: String,
    pub root_device_name: Option<String>,
}

/// The newest image: latest creation date, then greatest name (names of
/// Amazon's images embed their date), so the choice is deterministic.
fn newest(images: &[Ec2Image]) -> Option<&Ec2Image> {
    images.iter().filter(|i| i.image_id().is_some()).max_by(|a, b| {
        (a.creation_date().unwrap_or(""), a.name().unwrap_or(""))
            .cmp(&(b.creation_date().unwrap_or(""), b.name().unwrap_or("")))
    })
}

/// The image to launch for `ami` ("auto", with or without a `lookup`, or
/// an id). For an explicit id the
/// image is only described when `need_root_device` (one call saved).
pub(crate) async fn resolve(
    c: &Clients,
    ami: &str,
    need_root_device: bool,
    lookup: Option<&Lookup>,
) -> Result<Image, ProviderError> {
    if let (AUTO, Some(lookup)) = (ami, lookup) {
        return newest_published(c, lookup).await;
    }
    if ami != AUTO {
        if !need_root_device {
            return Ok(Image { id: ami.to_string(), root_device_name: None });
        }
        let out = c.call("DescribeImages", Retry::Standard, || c.ec2.describe_images().image_ids(ami).send()).await?;
        let image = out
            .images()
            .first()
            .ok_or_else(|| ProviderError::new(format!("AMI {ami} does not exist in this region or is not visible")))?;
        return Ok(Image { id: ami.to_string(), root_device_name: image.root_device_name().map(str::to_string) });
    }
    let out = c
        .call("DescribeImages", Retry::Standard, || {
            c.ec2
                .describe_images()
                .owners("amazon")
                .filters(filter("name", [AUTO_NAME_PATTERN]))
                .filters(filter("architecture", ["x86_64"]))
                .filters(filter("state", ["available"]))
                .send()
        })
        .await?;
    let image = newest(out.images()).ok_or_else(|| {
        ProviderError::new(format!(
            "ami = \"auto\" found no available x86_64 Amazon image named {AUTO_NAME_PATTERN} in this region; set an AMI id"
        ))
    })?;
    Ok(Image {
        id: image.image_id().unwrap_or_default().to_string(),
        root_device_name: image.root_device_name().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, name: &str, created: Option<&str>) -> Ec2Image {
        Ec2Image::builder().image_id(id).name(name).set_creation_date(created.map(str::to_string)).build()
    }

    #[test]
    fn picks_the_newest_image() {
        let images = [
            image("ami-old", "al2023-ami-2023.5.20240701.0-kernel-6.1-x86_64", Some("2024-07-01T00:00:00.000Z")),
            image("ami-new", "al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64", Some("2024-12-12T00:00:00.000Z")),
            image("ami-mid", "al2023-ami-2023.6.20241001.0-kernel-6.1-x86_64", Some("2024-10-01T00:00:00.000Z")),
        ];
        assert_eq!(newest(&images).unwrap().image_id(), Some("ami-new"));
    }

    #[test]
    fn same_date_falls_back_to_the_name() {
        let images = [
            image("ami-a", "al2023-ami-2023.6.20241001.0-kernel-6.1-x86_64", None),
            image("ami-b", "al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64", None),
        ];
        assert_eq!(newest(&images).unwrap().image_id(), Some("ami-b"));
        assert!(newest(&[]).is_none());
    }

    #[test]
    fn auto_reads_back_as_auto_when_resolved_or_unrecorded() {
        let prior = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert!(reads_as_auto(&prior(serde_json::json!({"ami": "auto", "resolved_ami": "ami-1"})), "ami", "ami-1"));
        assert!(!reads_as_auto(&prior(serde_json::json!({"ami": "auto", "resolved_ami": "ami-1"})), "ami", "ami-2"));
        assert!(
            reads_as_auto(&prior(serde_json::json!({"ami": "auto"})), "ami", "ami-2"),
            "found again: nothing recorded"
        );
        assert!(!reads_as_auto(&prior(serde_json::json!({"ami": "ami-1"})), "ami", "ami-1"));
    }
}
