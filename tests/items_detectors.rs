//! The built-in classic detectors, through `api::call`: the status auditor, the nosy
//! auditor and reactor (nosy list, recipients, mail written to the outbox in the
//! call's transaction), the message summary and the user auditor.

mod tracker_common;

use roundup_xmlrpc::mail::from_queue_file;
use roundup_xmlrpc::xmlrpc::Value;
use tracker_common::{admin, classic, fault, list, s};

const USAGE: &str = "<class 'roundup.exceptions.UsageError'>:";

#[test]
fn status_auditor_presets_unread_and_moves_to_chatting() {
    let t = classic("det-status", &[]);
    let id = t.create("issue", &["title=x"]);
    let d = format!("issue{id}");
    assert_eq!(t.prop(&d, "status"), s("1"), "unread");
    // A given status stays.
    let other = t.create("issue", &["title=y", "status=resolved"]);
    assert_eq!(t.prop(&format!("issue{other}"), "status"), s("8"));
    // A new message moves unread and resolved issues to chatting ...
    for issue in [&d, &format!("issue{other}")] {
        let m = t.create("msg", &["content=hi"]);
        t.call(&admin(), "set", &[issue, &format!("messages={m}")])
            .unwrap();
        assert_eq!(t.prop(issue, "status"), s("3"), "{issue} chatting");
    }
    // ... but not when the change sets the status itself, nor from another state.
    let m = t.create("msg", &["content=again"]);
    t.call(&admin(), "set", &[&d, "status=in-progress"])
        .unwrap();
    t.call(&admin(), "set", &[&d, &format!("messages=+{m}")])
        .unwrap();
    assert_eq!(t.prop(&d, "status"), s("5"), "in-progress stays");
}

#[test]
fn nosy_follows_assignees_and_authors() {
    let t = classic("det-nosy", &[]);
    let joe = t.user("joe", "User");
    let jid = joe.id.to_string();
    let id = t.create("issue", &["title=x", &format!("assignedto={jid}")]);
    let d = format!("issue{id}");
    assert_eq!(t.prop(&d, "nosy"), list(&[&jid]), "the assignee");
    // [nosy] add_author = new: the author of the first message of a new issue.
    let m = t.create("msg", &["content=first", "author=1"]);
    let id2 = t.create("issue", &["title=y", &format!("messages={m}")]);
    assert_eq!(t.prop(&format!("issue{id2}"), "nosy"), list(&["1"]));
    // Later messages' authors are not added (add_author is `new`).
    let m2 = t.create("msg", &["content=later", &format!("author={jid}")]);
    t.call(
        &admin(),
        "set",
        &[&format!("issue{id2}"), &format!("messages=+{m2}")],
    )
    .unwrap();
    assert_eq!(t.prop(&format!("issue{id2}"), "nosy"), list(&["1"]));
}

#[test]
fn nosy_add_author_yes_adds_every_author() {
    let t = classic("det-nosy-yes", &["nosy.add_author=yes"]);
    let joe = t.user("joe", "User");
    let jid = joe.id.to_string();
    let id = t.create("issue", &["title=y"]);
    let m = t.create("msg", &["content=later", &format!("author={jid}")]);
    t.call(
        &admin(),
        "set",
        &[&format!("issue{id}"), &format!("messages={m}")],
    )
    .unwrap();
    assert_eq!(t.prop(&format!("issue{id}"), "nosy"), list(&[&jid]));
}

#[test]
fn a_new_message_is_mailed_to_the_nosy_list_through_the_outbox() {
    let t = classic("det-mail", &["mail_debug=mail.log"]);
    let joe = t.user("joe", "User");
    let bob = t.user("bob", "User");
    let id = t.create(
        "issue",
        &["title=broken", &format!("nosy={},{}", joe.id, bob.id)],
    );
    assert!(t.outbox().is_empty(), "no message yet");
    let m = t.create(
        "msg",
        &[
            "content=It is broken.\n\nDetails.",
            &format!("author={}", joe.id),
        ],
    );
    t.call(
        &admin(),
        "set",
        &[&format!("issue{id}"), &format!("messages={m}")],
    )
    .unwrap();
    // Written by the call's transaction; the delivery thread (not started here)
    // sends it.
    let queued = t.outbox();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let mail = from_queue_file(&std::fs::read_to_string(&queued[0]).unwrap()).unwrap();
    // messages_to_author = no: only bob; joe is the author.
    assert_eq!(mail.to, ["bob@example.com"]);
    assert_eq!(mail.subject, format!("[issue{id}] broken"));
    assert_eq!(mail.from, "joe <issue_tracker@example.com>");
    assert!(mail.body.contains("It is broken."), "{}", mail.body);
    // The message records who got it, and got a Message-Id.
    let d = format!("msg{m}");
    assert_eq!(t.prop(&d, "recipients"), list(&[&bob.id.to_string()]));
    let Value::String(mid) = t.prop(&d, "messageid") else {
        panic!("a message id");
    };
    assert!(mid.ends_with(&format!(".issue{id}@example.com>")), "{mid}");
    assert_eq!(mail.message_id, mid);
    // The summary is the first line of the content.
    assert_eq!(t.prop(&d, "summary"), s("It is broken."));
}

#[test]
fn no_mail_without_a_mail_host_or_debug_file() {
    let t = classic("det-nomail", &[]);
    let joe = t.user("joe", "User");
    let id = t.create("issue", &["title=x", &format!("nosy={}", joe.id)]);
    let m = t.create("msg", &["content=hi", "author=1"]);
    t.call(
        &admin(),
        "set",
        &[&format!("issue{id}"), &format!("messages={m}")],
    )
    .unwrap();
    assert!(t.outbox().is_empty());
}

#[test]
fn user_auditor_validates_names_addresses_roles_and_zones() {
    let t = classic("det-user", &[]);
    let bad = |props: &[&str]| {
        let mut params = vec!["user"];
        params.extend_from_slice(props);
        fault(t.call(&admin(), "create", &params)).1
    };
    assert_eq!(
        bad(&["username=bad name"]),
        format!("{USAGE}Username/Login Name must consist only of the letters a-z (any case), digits 0-9 and the symbols: @._-!+%")
    );
    assert!(bad(&["username=ok", "address=not an address"]).starts_with(USAGE));
    assert_eq!(
        bad(&["username=ok", "roles=Wizard"]),
        format!("{USAGE}Role \"wizard\" does not exist")
    );
    // Roundup without pytz: hour offsets and a few names only.
    assert_eq!(
        bad(&["username=ok", "timezone=Mars/Base"]),
        "<class 'KeyError'>:'Mars/Base'"
    );
    assert_eq!(
        bad(&["username=ok", "timezone=30"]),
        format!("{USAGE}Timezone \"30\" exceeds valid range [-23...23]")
    );
    t.create(
        "user",
        &[
            "username=ok",
            "address=ok@example.com",
            "roles=User",
            "timezone=-5",
        ],
    );
    t.create("user", &["username=ok2", "timezone=UTC"]);
}
