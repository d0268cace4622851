//! initial_data.toml: parsing, placeholders and validation against the schema.

use std::collections::HashMap;
use std::path::Path;

use roundup_xmlrpc::schema::initial_data::{parse_initial_data, InitialData};
use roundup_xmlrpc::schema::load_schema;

fn vars() -> HashMap<String, String> {
    [("admin_password".to_string(), "pa$$word".to_string())]
        .into_iter()
        .collect()
}

fn err(text: &str) -> String {
    parse_initial_data(text, "initial_data.toml", &vars())
        .unwrap_err()
        .to_string()
}

#[test]
fn placeholders_and_dollars() {
    let d = parse_initial_data(
        "[[create]]\nclass = \"user\"\nprops = [\"password=${admin_password}\", \"realname=$$5 ${admin_password}$\"]\n[[create]]\nclass = \"keyword\"\n",
        "initial_data.toml",
        &vars(),
    )
    .unwrap();
    assert_eq!(
        d,
        InitialData {
            creates: vec![
                (
                    "user".into(),
                    vec!["password=pa$$word".into(), "realname=$5 pa$$word$".into()]
                ),
                ("keyword".into(), vec![]),
            ]
        }
    );
    assert_eq!(
        parse_initial_data("", "x", &vars()).unwrap(),
        InitialData::default()
    );
}

#[test]
fn errors_have_locations() {
    assert_eq!(
        err("[[create]]\nclass = \"user\"\nprops = [\"address=${admin_email}\"]\n"),
        "initial_data.toml:3:10: unknown placeholder ${admin_email} (known: admin_password)"
    );
    assert_eq!(
        err("[[create]]\nclass = \"user\"\nprops = [\"username\"]\n"),
        "initial_data.toml:3:10: \"username\" is not of the form name=value"
    );
    assert_eq!(
        err("[[create]]\nclass = \"user\"\nprops = [\"user name=x\"]\n"),
        "initial_data.toml:3:10: \"user name=x\": invalid property name \"user name\""
    );
    assert_eq!(
        err("[[create]]\nklass = \"user\"\n"),
        "initial_data.toml:2:1: unknown key \"klass\" in [[create]] (expected one of: class, props)"
    );
    assert_eq!(
        err("[[create]]\nprops = []\n"),
        "initial_data.toml:1:1: [[create]] needs a \"class\""
    );
    assert_eq!(
        err("[create]\nclass = \"user\"\n"),
        "initial_data.toml:1:1: \"create\" (write [[create]]) must be an array, not a table"
    );
    assert_eq!(
        err("[[create]]\nclass = \"status1\"\n"),
        "initial_data.toml:2:9: invalid class name \"status1\""
    );
}

#[test]
fn validate_against_schema() {
    let schema =
        load_schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tracker-template/schema.toml"))
            .unwrap();
    let ok = InitialData {
        creates: vec![("issue".into(), vec!["title=x".into(), "nosy=1".into()])],
    };
    ok.validate(&schema).unwrap();
    let bad_class = InitialData {
        creates: vec![("ticket".into(), vec![])],
    };
    assert_eq!(
        bad_class.validate(&schema).unwrap_err().to_string(),
        "create #1 (ticket): unknown class \"ticket\""
    );
    let bad_prop = InitialData {
        creates: vec![
            ("status".into(), vec!["name=x".into()]),
            ("status".into(), vec!["nam=y".into()]),
        ],
    };
    assert_eq!(
        bad_prop.validate(&schema).unwrap_err().to_string(),
        "create #2 (status): \"nam\" is not a property of class \"status\""
    );
}
