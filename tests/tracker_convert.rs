//! `convert_schema` on a real Roundup classic tracker gives the same schema as our
//! hand-written classic template (tracker-template/schema.toml). Skipped when
//! Roundup is not importable by `python3`.

mod require;

use roundup_xmlrpc::admin::convert::convert_schema;
use roundup_xmlrpc::schema::load_schema;
use roundup_xmlrpc::schema::{Grant, Schema};
use std::path::Path;
use std::process::{Command, Stdio};

/// Grants as sorted one-role tuples, so that grouping and order do not matter.
fn flat_grants(s: &Schema) -> Vec<String> {
    let mut out: Vec<String> = s
        .grants
        .iter()
        .flat_map(|g: &Grant| {
            g.roles.iter().map(move |r| {
                format!(
                    "{r}|{}|{:?}|{:?}|{}|{:?}|{}",
                    g.permission,
                    g.class,
                    g.properties,
                    g.props_only,
                    g.check.is_some(),
                    g.description
                ) + &g
                    .check
                    .as_ref()
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_default()
            })
        })
        .collect();
    out.sort();
    out
}

#[test]
fn classic_converts_to_our_classic_template() {
    let ok = Command::new("python3")
        .args(["-c", "import roundup.instance"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        require::missing("python3 with the roundup package");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rxs-tracker-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new("python3")
        .args(["-m", "roundup.scripts.roundup_admin", "-i"])
        .arg(&dir)
        .args(["install", "classic", "sqlite", "mail_domain=example.com"])
        .stdout(Stdio::null())
        .status()
        .expect("run roundup-admin");
    assert!(status.success());

    let report = convert_schema(&dir, false).expect("classic converts completely");
    assert!(report.contains("0 item(s) not converted"), "{report}");
    let converted = load_schema(&dir.join("schema.toml")).unwrap();
    let ours =
        load_schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tracker-template/schema.toml"))
            .unwrap();
    assert_eq!(converted.classes, ours.classes);
    assert_eq!(converted.roles, ours.roles);
    assert_eq!(converted.detectors, ours.detectors);
    assert_eq!(flat_grants(&converted), flat_grants(&ours));

    // A second conversion never replaces the file.
    let err = convert_schema(&dir, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
