//! Roundup's permission model on the classic schema, asked directly
//! (`security::Security`): class-, property- and item-level questions, check
//! conditions (`id == $user`, `private_for is empty or private_for == $user`,
//! `creator == $user`), global permissions and search permission on dotted paths.

mod tracker_common;

use roundup_xmlrpc::security::{split_roles, UserCtx};
use tracker_common::{admin, anonymous, classic, TestTracker};

fn may(
    t: &TestTracker,
    user: &UserCtx,
    perm: &str,
    class: &str,
    prop: Option<&str>,
    id: Option<i64>,
) -> bool {
    let mut tx = t.tracker.store.read().unwrap();
    t.tracker
        .security
        .has_permission(&mut *tx, user, perm, Some(class), prop, id)
        .unwrap()
}

#[test]
fn roles_split_as_roundup_splits_them() {
    assert_eq!(split_roles(" User, Admin ,,"), ["user", "admin"]);
    assert!(split_roles("").is_empty());
}

#[test]
fn global_permissions() {
    let t = classic("sec-global", &[]);
    let joe = t.user("joe", "User");
    let s = &t.tracker.security;
    assert!(s.has_permission_static(&admin(), "Xmlrpc Access", None, None));
    assert!(s.has_permission_static(&joe, "Xmlrpc Access", None, None));
    assert!(!s.has_permission_static(&anonymous(), "Xmlrpc Access", None, None));
    // Unknown roles grant nothing.
    let nobody = UserCtx {
        id: 99,
        username: "x".into(),
        roles: vec!["wizard".into()],
    };
    assert!(!s.has_permission_static(&nobody, "Xmlrpc Access", None, None));
    // Admin holds everything through the implicit grants.
    assert!(may(&t, &admin(), "Edit", "status", Some("name"), Some(1)));
    assert!(may(&t, &admin(), "Retire", "user", None, Some(2)));
}

#[test]
fn own_user_record_checks() {
    let t = classic("sec-user", &[]);
    let joe = t.user("joe", "User");
    // Some properties of every user; the rest only of one's own record.
    assert!(may(&t, &joe, "View", "user", Some("username"), Some(1)));
    assert!(!may(&t, &joe, "View", "user", Some("address"), Some(1)));
    assert!(may(&t, &joe, "View", "user", Some("address"), Some(joe.id)));
    assert!(may(
        &t,
        &joe,
        "Edit",
        "user",
        Some("realname"),
        Some(joe.id)
    ));
    assert!(!may(&t, &joe, "Edit", "user", Some("realname"), Some(1)));
    assert!(!may(&t, &joe, "Edit", "user", Some("roles"), Some(joe.id)));
    // Without an item, a check is not run: the class-level answer is yes.
    assert!(may(&t, &joe, "Edit", "user", Some("realname"), None));
    assert!(t.tracker.security.has_unchecked(&joe, "View", "issue"));
    assert!(!t.tracker.security.has_unchecked(&joe, "Edit", "user"));
}

#[test]
fn query_checks_follow_private_for_and_creator() {
    let t = classic("sec-query", &[]);
    let joe = t.user("joe", "User");
    let ann = t.user("ann", "User");
    let private = t.create(
        "query",
        &["klass=issue", "name=p", &format!("private_for={}", ann.id)],
    );
    let public = t.create("query", &["klass=issue", "name=q"]);
    let (private, public): (i64, i64) = (private.parse().unwrap(), public.parse().unwrap());
    assert!(may(&t, &ann, "View", "query", None, Some(private)));
    assert!(!may(&t, &joe, "View", "query", None, Some(private)));
    assert!(may(&t, &joe, "View", "query", None, Some(public)));
    // Created by admin: nobody else may edit or retire them.
    assert!(!may(&t, &ann, "Edit", "query", None, Some(private)));
    assert!(!may(&t, &joe, "Retire", "query", None, Some(public)));
}

#[test]
fn search_permission_on_dotted_paths() {
    let t = classic("sec-search", &[]);
    let joe = t.user("joe", "User");
    let s = &t.tracker.security;
    assert!(s.has_search_permission(&joe, "issue", "title"));
    assert!(s.has_search_permission(&joe, "issue", "status.name"));
    assert!(s.has_search_permission(&joe, "issue", "assignedto.username"));
    // A property of user that User may not view (without a check).
    assert!(!s.has_search_permission(&joe, "issue", "assignedto.address"));
    assert!(!s.has_search_permission(&joe, "issue", "nosuch"));
    assert!(!s.has_search_permission(&joe, "issue", "title.name"));
    // Anonymous may search users (the "Show Unassigned" search) but not view them.
    assert!(s.has_search_permission(&anonymous(), "user", "username"));
}
