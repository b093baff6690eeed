//! The bad-input corpus in tests/fixtures/bad/: broken specs (each names on
//! its first line, `# expect: ...`, what the error must say) and broken
//! state files (listed in states.txt). Each must exit 1, say that, write
//! nothing and call no cloud.

use std::path::{Path, PathBuf};

use crate::support::Workdir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

fn listing(w: &Workdir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_broken_spec_exits_1_with_its_message_and_writes_nothing() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| {
            panic!("{} must start with `# expect: <message>`", path.display());
        });
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let w = Workdir::new();
        w.write(&name, &text);
        // Unreachable endpoint: any cloud call would fail loudly, not hang.
        let env = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_REGION", "us-east-1"),
        ];
        for args in [vec!["validate", &name], vec!["plan", &name], vec!["apply", &name, "--auto-approve"]] {
            let mut cmd = w.command(&args);
            cmd.envs(env);
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}: {args:?} must exit 1\n{stderr}");
            assert!(stderr.contains(expect), "{name}: {args:?} must say {expect:?}\nit said:\n{stderr}");
            assert_eq!(listing(&w), std::slice::from_ref(&name), "{name}: {args:?} wrote something");
        }
        seen += 1;
    }
    assert!(seen >= 15, "the corpus has {seen} specs");
}

#[test]
fn every_broken_state_is_refused_and_left_byte_identical() {
    let list = std::fs::read_to_string(fixtures().join("states.txt")).unwrap();
    let mut seen = 0;
    for line in list.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (file, expect) = line.split_once('\t').expect("FILE<TAB>message");
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        let w = Workdir::new();
        w.write("spec.toml", "[resource.sim_resource.a]\nsize = 1\n");
        std::fs::write(w.path("spec.state.json"), &bytes).unwrap();
        for args in [&["plan", "spec.toml"][..], &["apply", "spec.toml", "--auto-approve"], &["state", "list"]] {
            let out = w.run(args).code(1);
            assert!(out.stderr.contains(expect), "{file}: {args:?} must say {expect:?}\n{}", out.stderr);
            assert_eq!(std::fs::read(w.path("spec.state.json")).unwrap(), bytes, "{file} changed");
            assert_eq!(listing(&w), ["spec.state.json", "spec.toml"], "{file}: {args:?} wrote something");
        }
        seen += 1;
    }
    assert_eq!(seen, 3);
}
