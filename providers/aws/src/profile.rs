//! Checking that a named AWS profile exists before the SDK looks for it.
//!
//! With `AWS_PROFILE=nope` the SDK's default chain skips the missing profile
//! and ends at the instance metadata service, whose failure (HTTP headers
//! and all) says nothing about the profile. A profile named by the user
//! that is in neither shared file is a mistake to report as such: which
//! profile, and which files were searched.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// The shared config and credentials files, as the SDK finds them:
/// `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/config`
/// and `~/.aws/credentials`.
pub(crate) fn shared_files() -> [PathBuf; 2] {
    let home = || std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let config = std::env::var_os("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home().join(".aws/config"));
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".aws/credentials"));
    [config, credentials]
}

/// The profile names a file defines: `[profile NAME]` or `[default]` in the
/// config file, `[NAME]` in the credentials file.
pub(crate) fn profiles_in(text: &str, config_file: bool) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix('[')?.split(']').next())
        .filter_map(|section| {
            let section = section.trim();
            match (config_file, section.strip_prefix("profile ")) {
                (true, Some(name)) => Some(name.trim().to_string()),
                (true, None) if section == "default" => Some(section.to_string()),
                (true, None) => None,
                (false, _) => Some(section.to_string()),
            }
        })
        .collect()
}

/// `Err` with a message naming the profile, where it was named (`from`) and
/// the files searched, when `profile` is in neither shared file.
pub(crate) fn check_exists(profile: &str, from: &str) -> Result<(), String> {
    let [config, credentials] = shared_files();
    let mut found = BTreeSet::new();
    let mut searched = Vec::new();
    for (path, config_file) in [(&config, true), (&credentials, false)] {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                found.extend(profiles_in(&text, config_file));
                searched.push(path.display().to_string());
            }
            Err(_) => searched.push(format!("{} (does not exist)", path.display())),
        }
    }
    if found.contains(profile) {
        return Ok(());
    }
    let known = if found.is_empty() {
        "no profiles are defined there".to_string()
    } else {
        format!("profiles there: {}", found.into_iter().collect::<Vec<_>>().join(", "))
    };
    Err(format!(
        "AWS profile `{profile}` ({from}) does not exist: searched {}; {known}\n  \
         help: name one of those profiles, create it with `aws configure --profile {profile}`, or set \
         AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE to the files that define it",
        searched.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profile_names_the_way_each_file_writes_them() {
        let config = "[default]\nregion = us-east-1\n[profile prod]\nregion=eu-west-1\n[sso-session x]\n";
        assert_eq!(profiles_in(config, true), ["default", "prod"].map(String::from).into());
        let credentials = "[default]\naws_access_key_id = A\n[ ci ]\n";
        assert_eq!(profiles_in(credentials, false), ["ci", "default"].map(String::from).into());
    }
}
