//! Every ```toml block of the user-facing contract (../shared/contract.md,
//! beside the repository) validates with `skyplan validate`, so the
//! contract's own examples can never break again.
//!
//! The file is required: when it is missing the test fails, naming every
//! place it looked (it never skips). Found at, in order: `SKYPLAN_CONTRACT`
//! when set; `../shared/contract.md` from the repository root; the same
//! beside the main worktree when this checkout is a `git worktree` (whose
//! root is elsewhere).
//!
//! How a block becomes a spec, minimally and the same way for every block:
//! a block is checked as written, except that in a block that sets
//! `[placement] mode`, the keys its comments mark as the *other* mode's
//! (`# static only` in a dynamic block, `# dynamic only` in a static one)
//! are left out, with the `[[placement.subnet]]` table in a dynamic block:
//! the spec reference block lists both modes' keys for the reader, and a
//! spec holding both is rightly refused. Nothing is added or changed.

use std::path::PathBuf;
use std::process::Command;

use crate::support::Workdir;

/// Where the contract is, or a panic naming every place tried.
fn contract_path() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("SKYPLAN_CONTRACT") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "SKYPLAN_CONTRACT={} is not a file", p.display());
        return p;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    tried.push(root.join("../shared/contract.md"));
    // A `git worktree`: the main worktree's root is the parent of the common git dir.
    let common = Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(main_root) = common.as_ref().and_then(|c| c.parent()) {
        tried.push(main_root.join("../shared/contract.md"));
    }
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => p.clone(),
        None => panic!(
            "the contract is missing: looked for {} (set SKYPLAN_CONTRACT=PATH to name it)",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
        ),
    }
}

/// The ```toml blocks of a markdown text, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match current.take() {
            None if fence && line.trim() == "```toml" => current = Some((n + 2, String::new())),
            None => {}
            Some(block) if fence => blocks.push(block),
            Some((start, mut text)) => {
                text.push_str(line);
                text.push('\n');
                current = Some((start, text));
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```toml block");
    blocks
}

/// The placement mode a block sets (`mode = "dynamic"`), if any.
fn written_mode(block: &str) -> Option<String> {
    let line = block.lines().find(|l| l.trim_start().starts_with("mode = "))?;
    Some(line.split('"').nth(1)?.to_string())
}

/// The block for one placement mode: the other mode's lines (marked in
/// their comment) and, for dynamic, the `[[placement.subnet]]` table left
/// out; `mode` set. Unchanged when the block has no `mode` line.
fn for_mode(block: &str, mode: &str) -> String {
    if !block.lines().any(|l| l.trim_start().starts_with("mode = ")) {
        return block.to_string();
    }
    let other = if mode == "static" { "dynamic only" } else { "static only" };
    let mut out = String::new();
    let mut in_subnet_table = false;
    for line in block.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_subnet_table = trimmed.starts_with("[[placement.subnet]]") && mode == "dynamic";
        }
        if in_subnet_table || line.contains(other) {
            continue;
        }
        if trimmed.starts_with("mode = ") {
            out.push_str(&format!("mode = \"{mode}\"\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn every_toml_block_of_the_contract_validates() {
    let path = contract_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let blocks = toml_blocks(&text);
    assert!(blocks.len() >= 2, "{} has only {} ```toml blocks", path.display(), blocks.len());
    let w = Workdir::new();
    let mut checked = 0;
    for (line, block) in &blocks {
        let spec = match written_mode(block) {
            Some(mode) => for_mode(block, &mode),
            None => block.clone(),
        };
        let name = format!("block-{line}.toml");
        w.write(&name, &spec);
        let out = w.run(&["validate", &name]);
        assert_eq!(
            out.code,
            0,
            "the ```toml block at {}:{line} does not validate:\n{}\nspec as checked:\n{spec}",
            path.display(),
            out.stderr
        );
        assert!(out.stdout.contains("is valid"), "{}", out.stdout);
        checked += 1;
    }
    assert_eq!(checked, blocks.len());
}

#[test]
fn the_block_reader_keeps_lines_and_modes_apart() {
    let md = "text\n```toml\na = 1\n```\n```\nnot = toml\n```\n```toml\nb = 2\n```\n";
    assert_eq!(toml_blocks(md), vec![(3, "a = 1\n".to_string()), (9, "b = 2\n".to_string())]);
    let block = "[placement]\nmode = \"dynamic\"  # x\nvpc_cidr = \"10.0.0.0/16\"  # dynamic only\nvpc_id = \"v\"  # static only\n[[placement.subnet]]  # static only: one per AZ\naz = \"a\"\n[bastion]\n";
    assert_eq!(
        for_mode(block, "dynamic"),
        "[placement]\nmode = \"dynamic\"\nvpc_cidr = \"10.0.0.0/16\"  # dynamic only\n[bastion]\n"
    );
    assert_eq!(
        for_mode(block, "static"),
        "[placement]\nmode = \"static\"\nvpc_id = \"v\"  # static only\n[[placement.subnet]]  # static only: one per AZ\naz = \"a\"\n[bastion]\n"
    );
}
