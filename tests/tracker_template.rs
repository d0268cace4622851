//! The shipped tracker template: the classic schema, its permissions, config.ini and
//! initial data, compared with what Roundup 2.6 itself produces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use roundup_xmlrpc::auth::Scheme;
use roundup_xmlrpc::config::{load_config, MessagesToAuthor, NosyAdd};
use roundup_xmlrpc::schema::check::{CheckExpr, CompareOp, Operand};
use roundup_xmlrpc::schema::initial_data::load_initial_data;
use roundup_xmlrpc::schema::load_schema;
use roundup_xmlrpc::schema::{ClassKind, PropType, Schema};

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tracker-template")
}

fn schema() -> Schema {
    load_schema(&template().join("schema.toml")).unwrap()
}

/// Roundup's `db.security` of a fresh classic tracker, per role, each role's
/// permissions sorted as `Role.permission_list()` sorts them:
/// role|permission|class|sorted properties|check|description.
const ROUNDUP_GRANTS: &[&str] = &[
    "user|Email Access||||User may use the email interface",
    "user|Rest Access||||User may access the rest interface",
    "user|Web Access||||User may access the web interface",
    "user|Xmlrpc Access||||User may access the xmlrpc interface",
    "user|Create|file|||User is allowed to create file",
    "user|Edit|file|||User is allowed to edit file",
    "user|View|file|||User is allowed to access file",
    "user|Create|issue|||User is allowed to create issue",
    "user|Edit|issue|||User is allowed to edit issue",
    "user|View|issue|||User is allowed to access issue",
    "user|Create|keyword|||User is allowed to create keyword",
    "user|Edit|keyword|||User is allowed to edit keyword",
    "user|View|keyword|||User is allowed to access keyword",
    "user|Create|msg|||User is allowed to create msg",
    "user|Edit|msg|||User is allowed to edit msg",
    "user|View|msg|||User is allowed to access msg",
    "user|View|priority|||User is allowed to access priority",
    "user|Create|query|||User is allowed to create queries",
    "user|Edit|query||creator == $user|User is allowed to edit their queries",
    "user|Restore|query||creator == $user|User is allowed to restore their queries",
    "user|Retire|query||creator == $user|User is allowed to retire their queries",
    "user|Search|query|||",
    "user|View|query||private_for is empty or private_for == $user|User is allowed to view their own and public queries",
    "user|View|status|||User is allowed to access status",
    "user|Edit|user|address,alternate_addresses,organisation,password,phone,queries,realname,timezone,username|id == $user|User is allowed to edit their own user details",
    "user|View|user|id,organisation,phone,realname,timezone,username||",
    "user|View|user||id == $user|User is allowed to view their own user details",
    "admin|Create||||User may create everything",
    "admin|Edit||||User may edit everything",
    "admin|Email Access||||User may use the email interface",
    "admin|Rest Access||||User may access the rest interface",
    "admin|Restore||||User may restore everything",
    "admin|Retire||||User may retire everything",
    "admin|View||||User may view everything",
    "admin|Web Access||||User may access the web interface",
    "admin|Web Roles||||User may manipulate user Roles through the web",
    "admin|Xmlrpc Access||||User may access the xmlrpc interface",
    "anonymous|Web Access||||User may access the web interface",
    "anonymous|View|file|||User is allowed to access file",
    "anonymous|View|issue|||User is allowed to access issue",
    "anonymous|View|keyword|||User is allowed to access keyword",
    "anonymous|View|msg|||User is allowed to access msg",
    "anonymous|View|priority|||User is allowed to access priority",
    "anonymous|View|status|||User is allowed to access status",
    "anonymous|Register|user|||User is allowed to register new user",
    "anonymous|Search|user|||",
];

#[test]
fn classes_in_roundup_order_with_definition_order_properties() {
    let s = schema();
    let got: Vec<(&str, Vec<&str>)> = s
        .classes
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.properties.iter().map(|p| p.name.as_str()).collect(),
            )
        })
        .collect();
    // As Roundup stores them in the `schema` table (definition order).
    let want: Vec<(&str, Vec<&str>)> = vec![
        ("priority", vec!["name", "order"]),
        ("status", vec!["name", "order"]),
        ("keyword", vec!["name"]),
        ("query", vec!["klass", "name", "url", "private_for"]),
        (
            "user",
            vec![
                "username",
                "password",
                "address",
                "realname",
                "phone",
                "organisation",
                "alternate_addresses",
                "queries",
                "roles",
                "timezone",
            ],
        ),
        (
            "msg",
            vec![
                "author",
                "recipients",
                "date",
                "summary",
                "files",
                "messageid",
                "inreplyto",
                "content",
                "type",
            ],
        ),
        ("file", vec!["name", "content", "type"]),
        (
            "issue",
            vec![
                "assignedto",
                "keyword",
                "priority",
                "status",
                "title",
                "messages",
                "files",
                "nosy",
                "superseder",
            ],
        ),
    ];
    assert_eq!(got, want);
    let kinds: Vec<ClassKind> = s.classes.iter().map(|c| c.kind).collect();
    use ClassKind::*;
    assert_eq!(
        kinds,
        vec![Class, Class, Class, Class, Class, FileClass, FileClass, IssueClass]
    );
}

#[test]
fn schema_reprs_match_roundup() {
    // §2.1: schema() lists each class's properties sorted by name with their reprs.
    let s = schema();
    let mut got = Vec::new();
    for c in &s.classes {
        let mut props: Vec<(String, String)> = c
            .properties
            .iter()
            .map(|p| (p.name.clone(), p.kind.repr()))
            .collect();
        props.sort();
        let line: Vec<String> = props
            .iter()
            .map(|(n, r)| {
                let short = r
                    .trim_start_matches("<roundup.hyperdb.")
                    .trim_end_matches('>');
                format!("[{n} {short}]")
            })
            .collect();
        got.push(format!("{}: {}", c.name, line.join(" ")));
    }
    assert_eq!(
        got,
        vec![
            "priority: [name String] [order Number]",
            "status: [name String] [order Number]",
            "keyword: [name String]",
            "query: [klass String] [name String] [private_for Link to \"user\"] [url String]",
            "user: [address String] [alternate_addresses String] [organisation String] [password Password] [phone String] [queries Multilink to \"query\"] [realname String] [roles String] [timezone String] [username String]",
            "msg: [author Link to \"user\"] [content String] [date Date] [files Multilink to \"file\"] [inreplyto String] [messageid String] [recipients Multilink to \"user\"] [summary String] [type String]",
            "file: [content String] [name String] [type String]",
            "issue: [assignedto Link to \"user\"] [files Multilink to \"file\"] [keyword Multilink to \"keyword\"] [messages Multilink to \"msg\"] [nosy Multilink to \"user\"] [priority Link to \"priority\"] [status Link to \"status\"] [superseder Multilink to \"issue\"] [title String]",
        ]
    );
}

#[test]
fn property_options_keys_and_labels() {
    let s = schema();
    let p = |c: &str, n: &str| s.class(c).unwrap().prop(n).unwrap().kind.clone();
    assert_eq!(
        p("msg", "author"),
        PropType::Link {
            class: "user".into(),
            do_journal: false
        }
    );
    assert_eq!(
        p("msg", "recipients"),
        PropType::Multilink {
            class: "user".into(),
            do_journal: false
        }
    );
    assert_eq!(
        p("msg", "files"),
        PropType::Multilink {
            class: "file".into(),
            do_journal: true
        }
    );
    assert_eq!(
        p("issue", "nosy"),
        PropType::Multilink {
            class: "user".into(),
            do_journal: false
        }
    );
    assert_eq!(
        p("issue", "messages"),
        PropType::Multilink {
            class: "msg".into(),
            do_journal: true
        }
    );
    assert_eq!(
        p("issue", "assignedto"),
        PropType::Link {
            class: "user".into(),
            do_journal: true
        }
    );
    assert_eq!(p("issue", "title"), PropType::String { indexme: true });
    assert_eq!(p("msg", "content"), PropType::String { indexme: true });
    assert_eq!(p("file", "type"), PropType::String { indexme: false });
    assert_eq!(p("user", "address"), PropType::String { indexme: false });
    assert!(s
        .classes
        .iter()
        .flat_map(|c| &c.properties)
        .all(|p| !p.quiet && !p.required));

    let keys: Vec<Option<&str>> = s.classes.iter().map(|c| c.key.as_deref()).collect();
    assert_eq!(
        keys,
        vec![
            Some("name"),
            Some("name"),
            Some("name"),
            None,
            Some("username"),
            None,
            None,
            None
        ]
    );
    let labels: Vec<String> = s.classes.iter().map(|c| c.labelprop()).collect();
    assert_eq!(
        labels,
        vec!["name", "name", "name", "name", "username", "activity", "name", "title"]
    );
    let orders: Vec<String> = s.classes.iter().map(|c| c.orderprop()).collect();
    assert_eq!(
        orders,
        vec!["order", "order", "name", "name", "username", "activity", "name", "title"]
    );
}

#[test]
fn roles_and_detectors() {
    let s = schema();
    let roles: Vec<(&str, &str)> = s
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r.description.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("User", "A regular user, no privs"),
            ("Admin", "An admin user, full privs"),
            ("Anonymous", "An anonymous user"),
        ]
    );
    assert!(s.has_role("ADMIN"));
    let d = &s.detectors;
    let on: Vec<(&str, Vec<&str>)> = d
        .builtins
        .iter()
        .map(|u| {
            (
                u.detector.key(),
                u.classes.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        on,
        vec![
            ("statusauditor", vec!["issue"]),
            ("nosyreaction", vec!["issue"]),
            ("messagesummary", vec!["msg"]),
            ("userauditor", vec!["user"]),
        ]
    );
    assert!(!d.chatting_requires_two_users);
    assert!(d.python.is_empty());
}

#[test]
fn grant_table_matches_roundup() {
    let s = schema();
    assert_eq!(s.grants.len(), 46);
    assert!(s.grants.iter().all(|g| g.roles.len() == 1));
    let render = |e: &CheckExpr| match e {
        CheckExpr::Compare {
            prop,
            op: CompareOp::Eq,
            operand: Operand::User,
        } => format!("{prop} == $user"),
        CheckExpr::Or(v) if v.len() == 2 => {
            assert_eq!(v[0], CheckExpr::IsEmpty("private_for".into()));
            "private_for is empty or private_for == $user".to_string()
        }
        other => panic!("unexpected check {other:?}"),
    };
    let mut got: Vec<String> = s
        .grants
        .iter()
        .map(|g| {
            assert!(!g.props_only);
            let mut props = g.properties.clone().unwrap_or_default();
            props.sort();
            format!(
                "{}|{}|{}|{}|{}|{}",
                g.roles[0],
                g.permission,
                g.class.as_deref().unwrap_or(""),
                props.join(","),
                g.check.as_ref().map(render).unwrap_or_default(),
                g.description
            )
        })
        .collect();
    let mut want: Vec<String> = ROUNDUP_GRANTS.iter().map(|s| s.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn grant_rows_in_file_order() {
    let s = schema();
    let first = &s.grants[0];
    assert_eq!(
        (
            first.roles[0].as_str(),
            first.permission.as_str(),
            first.class.as_deref()
        ),
        ("admin", "Create", None)
    );
    let own_edit = s
        .grants
        .iter()
        .find(|g| g.permission == "Edit" && g.class.as_deref() == Some("user"))
        .unwrap();
    assert_eq!(own_edit.roles, vec!["user"]);
    assert_eq!(
        own_edit.properties.as_deref().unwrap(),
        [
            "username",
            "password",
            "address",
            "realname",
            "phone",
            "organisation",
            "alternate_addresses",
            "queries",
            "timezone"
        ]
    );
    assert_eq!(own_edit.check.as_ref().unwrap().props(), vec!["id"]);
    // The classic loop order: View, Edit, Create on issue, then on file, ...
    let user_rows: Vec<String> = s
        .grants
        .iter()
        .filter(|g| g.roles == ["user"])
        .skip(4)
        .take(6)
        .map(|g| format!("{} {}", g.permission, g.class.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        user_rows,
        vec![
            "View issue",
            "Edit issue",
            "Create issue",
            "View file",
            "Edit file",
            "Create file"
        ]
    );
}

#[test]
fn template_config_gives_roundup_defaults() {
    let c = load_config(&template()).unwrap();
    assert_eq!(c.main.database, template().join("db"));
    assert_eq!(c.main.admin_email, "roundup-admin");
    assert_eq!(c.main.timezone, "0");
    assert_eq!(c.main.password_pbkdf2_default_rounds, 250_000);
    assert_eq!(c.tracker.name, "Roundup issue tracker");
    assert_eq!(c.tracker.web, None);
    assert_eq!(c.tracker.email, "issue_tracker");
    assert_eq!(c.web.api_failed_login_limit, 4);
    assert_eq!(c.web.api_failed_login_interval_in_sec, 600);
    assert_eq!(c.web.api_calls_per_interval, 0);
    assert_eq!(c.web.api_interval_in_sec, 3600);
    assert!(c.web.migrate_passwords);
    assert!(!c.web.login_empty_passwords);
    assert_eq!(c.rdbms.sqlite_timeout, 30);
    assert_eq!(c.mail.domain, None);
    assert_eq!(c.mail.host, None);
    assert_eq!(c.mail.port, 25);
    assert_eq!(c.mail.username, None);
    assert!(!c.mail.tls);
    assert_eq!(c.mail.debug, None);
    assert_eq!(c.nosy.messages_to_author, MessagesToAuthor::No);
    assert_eq!(c.nosy.add_author, NosyAdd::New);
    assert_eq!(c.nosy.add_recipients, NosyAdd::New);
    assert_eq!(c.server.password_default_scheme, Scheme::Pbkdf2S5);
    assert_eq!(c.server.bcrypt_cost, 12);
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.server.bind, None);
    // Defaults without any file are the same.
    let empty = load_config(Path::new("/nonexistent-tracker")).unwrap();
    assert_eq!(empty.web, c.web);
    assert_eq!(empty.nosy, c.nosy);
    assert_eq!(empty.mail, c.mail);
    assert_eq!(empty.server, c.server);
}

#[test]
fn initial_data_matches_classic() {
    let vars: HashMap<String, String> = [
        ("admin_password".to_string(), "sekrit".to_string()),
        (
            "admin_email".to_string(),
            "roundup-admin@example.com".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let d = load_initial_data(&template().join("initial_data.toml"), &vars).unwrap();
    d.validate(&schema()).unwrap();
    let classes: Vec<&str> = d.creates.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        classes,
        [vec!["priority"; 5], vec!["status"; 8], vec!["user"; 2]].concat()
    );
    let names: Vec<&str> = d.creates[..13]
        .iter()
        .map(|(_, p)| p[0].strip_prefix("name=").unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "critical",
            "urgent",
            "bug",
            "feature",
            "wish",
            "unread",
            "deferred",
            "chatting",
            "need-eg",
            "in-progress",
            "testing",
            "done-cbb",
            "resolved"
        ]
    );
    assert_eq!(d.creates[7].1, vec!["name=chatting", "order=3"]);
    assert_eq!(
        d.creates[13].1,
        vec![
            "username=admin",
            "password=sekrit",
            "address=roundup-admin@example.com",
            "roles=Admin"
        ]
    );
    assert_eq!(
        d.creates[14].1,
        vec!["username=anonymous", "roles=Anonymous"]
    );
    // A missing variable is an error naming the placeholder and its location.
    let e = load_initial_data(&template().join("initial_data.toml"), &HashMap::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains(": unknown placeholder ${admin_password} (known: none)"),
        "{e}"
    );
    assert!(e.to_string().contains("initial_data.toml:"), "{e}");
}
