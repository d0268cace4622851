//! User names must differ in more than letter case (`items::create`/`set`/`restore`
//! on the `user` class), compared with Unicode lower-casing.

use std::path::PathBuf;

use roundup_xmlrpc::admin::init::{create_as_admin, init};
use roundup_xmlrpc::tracker::Tracker;

fn tracker(name: &str) -> Tracker {
    tracker_with(name, true)
}

fn tracker_with(name: &str, userauditor: bool) -> Tracker {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("rxs-user-names-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    init(
        &dir,
        "pw",
        None,
        &["password_pbkdf2_default_rounds=1000".to_string()],
    )
    .unwrap();
    if !userauditor {
        let schema = dir.join("schema.toml");
        let text = std::fs::read_to_string(&schema).unwrap();
        assert!(text.contains("userauditor = true"));
        std::fs::write(
            &schema,
            text.replace("userauditor = true", "userauditor = false"),
        )
        .unwrap();
    }
    Tracker::open(&dir, "demo").unwrap()
}

fn create_user(t: &Tracker, name: &str) -> Result<(), String> {
    create_as_admin(t, &[("user".into(), vec![format!("username={name}")])])
        .map_err(|e| e.to_string())
}

#[test]
fn case_variants_of_live_users_are_refused() {
    let t = tracker("create");
    for name in ["ADMIN", "Admin", "aDmIn", "ANONYMOUS"] {
        let e = create_user(&t, name).unwrap_err();
        assert!(
            e.ends_with(&format!(
                "node with key \"{name}\" exists (user names that differ only in case clash)"
            )),
            "{e}"
        );
    }
    // Exact clashes keep Roundup's message.
    let e = create_user(&t, "admin").unwrap_err();
    assert!(e.ends_with("node with key \"admin\" exists"), "{e}");
    // Names that merely contain another are fine.
    create_user(&t, "admin2").unwrap();
    create_user(&t, "dmin").unwrap();
}

#[test]
fn unicode_case_is_folded_in_rust() {
    // Without the classic userauditor (which allows only ASCII names).
    let t = tracker_with("unicode", false);
    create_user(&t, "jörg").unwrap();
    for name in ["JÖRG", "Jörg", "jÖrg"] {
        let e = create_user(&t, name).unwrap_err();
        assert!(e.contains("differ only in case"), "{name}: {e}");
    }
    // U+212A KELVIN SIGN lower-cases to `k`: a look-alike of "kate".
    create_user(&t, "kate").unwrap();
    assert!(create_user(&t, "\u{212A}ate")
        .unwrap_err()
        .contains("differ only in case"));
    // Lower-casing, not full case folding: `ß` and `SS` stay distinct.
    create_user(&t, "straße").unwrap();
    create_user(&t, "STRASSE").unwrap();
}
