//! Detectors through `api::call`: the registry (Roundup's firing order, external
//! runtimes interleaved with built-ins and batched, retire/restore events), the
//! built-in classic detectors (the status auditor, the nosy auditor and reactor
//! with the mail written to the outbox in the call's transaction, the message
//! summary, the user auditor), and every built-in on classes other than the
//! classic ones (a devel-like schema).

mod tracker_common;

use std::sync::{Arc, Mutex};

use roundup_xmlrpc::error::{Error, Result};
use roundup_xmlrpc::items::detectors::{Event, External, Impl, Kind, Registry};
use roundup_xmlrpc::items::{Changes, Ctx};
use roundup_xmlrpc::mail::from_queue_file;
use roundup_xmlrpc::schema::ClassDef;
use roundup_xmlrpc::store::{Id, Item, PropValue};
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

#[test]
fn registry_fires_in_roundups_order() {
    let mut r = Registry::new();
    let b = |n| Impl::Builtin(n);
    use roundup_xmlrpc::items::detectors::Builtin::*;
    let e = |reg: &mut Registry, prio, name: &str| {
        reg.add(
            "issue",
            Kind::Audit,
            Event::Create,
            prio,
            name,
            b(PresetUnread),
        )
    };
    let s0 = e(&mut r, 100, "b");
    e(&mut r, 50, "z");
    e(&mut r, 100, "a");
    let s3 = e(&mut r, 100, "b");
    e(&mut r, 200, "a");
    e(&mut r, -5, "y");
    r.add(
        "issue",
        Kind::React,
        Event::Create,
        1,
        "other",
        b(NosyReaction),
    );
    r.add(
        "msg",
        Kind::Audit,
        Event::Create,
        1,
        "other",
        b(SummaryGenerator),
    );
    let order: Vec<(i32, &str, u64)> = r
        .registrations("issue", Kind::Audit, Event::Create)
        .iter()
        .map(|x| (x.priority, x.name.as_str(), x.seq))
        .collect();
    assert_eq!(
        order,
        vec![
            (-5, "y", 5),
            (50, "z", 1),
            (100, "a", 2),
            (100, "b", s0),
            (100, "b", s3),
            (200, "a", 4)
        ]
    );
    assert!(r.registrations("issue", Kind::Audit, Event::Set).is_empty());
    assert!(r
        .registrations("nosuch", Kind::Audit, Event::Create)
        .is_empty());
    assert_eq!(r.len(), 8);
}

/// An external runtime that logs what it is asked to run and acts on handles:
/// 3 sets the title, 7 reads the status it was given, 99 rejects.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
}

impl External for Recorder {
    fn audit(
        &self,
        _ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Option<Id>,
        handles: &[u64],
        changes: Option<&mut Changes>,
    ) -> Result<()> {
        let status = changes
            .as_ref()
            .map(|c| format!("{:?}", c.props.get("status")));
        self.log.lock().unwrap().push(format!(
            "audit {} {} {id:?} {handles:?} status={status:?}",
            class.name,
            event.name()
        ));
        if handles.contains(&99) {
            return Err(Error::Reject("no way".into()));
        }
        if let (Some(c), true) = (changes, handles.contains(&3)) {
            c.props
                .insert("title", Some(PropValue::String("from outside".into())));
        }
        Ok(())
    }

    fn react(
        &self,
        _ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Id,
        old: Option<&Item>,
        handles: &[u64],
    ) -> Result<()> {
        self.log.lock().unwrap().push(format!(
            "react {} {} {id} {handles:?} old={}",
            class.name,
            event.name(),
            old.is_some()
        ));
        Ok(())
    }
}

#[test]
fn external_detectors_interleave_with_builtins_in_runs() {
    let t = classic("det-external", &[]);
    let rec = Arc::new(Recorder::default());
    let ext = |h| Impl::External {
        runtime: rec.clone(),
        handle: h,
    };
    let mut r = Registry::builtin(&t.tracker.schema);
    // Around presetunread / updatenosy (priority 100) by name and priority.
    r.add("issue", Kind::Audit, Event::Create, 100, "a_first", ext(1));
    r.add("issue", Kind::Audit, Event::Create, 100, "b_second", ext(2));
    r.add("issue", Kind::Audit, Event::Create, 100, "q_third", ext(3));
    r.add("issue", Kind::Audit, Event::Create, 100, "q_third", ext(7));
    r.add("issue", Kind::Audit, Event::Create, 150, "a_late", ext(4));
    r.add("issue", Kind::React, Event::Create, 100, "r", ext(5));
    r.add("issue", Kind::React, Event::Set, 100, "r", ext(5));
    for ev in [Event::Retire, Event::Restore] {
        r.add("issue", Kind::Audit, ev, 100, "x", ext(10));
        r.add("issue", Kind::React, ev, 100, "x", ext(11));
    }
    r.add("keyword", Kind::Audit, Event::Retire, 100, "x", ext(99));
    assert!(r.install(&t.tracker).is_ok());
    assert!(
        Registry::new().install(&t.tracker).is_err(),
        "a tracker keeps its registry"
    );

    let id = t.create("issue", &["title=x"]);
    let d = format!("issue{id}");
    // Handle 3 changed the title; presetunread (between the runs) set the status.
    assert_eq!(t.prop(&d, "title"), s("from outside"));
    assert_eq!(t.prop(&d, "status"), s("1"));
    t.call(&admin(), "set", &[&d, "priority=2"]).unwrap();
    t.call(&admin(), "action", &["retire", &d]).unwrap();
    t.call(&admin(), "action", &["restore", &d]).unwrap();
    let log = rec.log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            "audit issue create None [1, 2] status=Some(\"None\")".to_string(),
            "audit issue create None [3, 7] status=Some(\"Some(Some(Link(1)))\")".into(),
            "audit issue create None [4] status=Some(\"Some(Some(Link(1)))\")".into(),
            format!("react issue create {id} [5] old=false"),
            format!("react issue set {id} [5] old=true"),
            format!("audit issue retire Some({id}) [10] status=None"),
            format!("react issue retire {id} [11] old=false"),
            format!("audit issue restore Some({id}) [10] status=None"),
            format!("react issue restore {id} [11] old=false"),
        ]
    );
    // A retire auditor that refuses: the item stays live, no journal row.
    let kw = t.create("keyword", &["name=k"]);
    let (_, text) = fault(t.call(&admin(), "action", &["retire", &format!("keyword{kw}")]));
    assert_eq!(text, "<class 'roundup.exceptions.Reject'>:no way");
    assert_eq!(
        t.call(&admin(), "lookup", &["keyword", "k"]).unwrap(),
        s(&kw)
    );
    assert_eq!(t.journal("keyword", &kw).len(), 1, "create only");
}

/// A devel-like schema where every built-in runs on classes other than the
/// classic template's (and on several at once).
const DEVEL_LIKE: &str = r#"
[class.status]
key = "name"
properties = { name = "String" }
[class.severity]
key = "name"
properties = { name = "String" }
[class.keyword]
key = "name"
properties = { name = "String" }
[class.user]
key = "username"
properties = { username = "String", password = "Password", address = "String", alternate_addresses = "String", roles = "String", realname = "String", timezone = "String" }
[class.person]
properties = { username = "String", address = "String" }
[class.msg]
kind = "FileClass"
[class.msg.properties]
author = { type = "Link", to = "user", do_journal = false }
recipients = { type = "Multilink", to = "user", do_journal = false }
summary = "String"
files = { type = "Multilink", to = "file" }
messageid = "String"
[class.note]
kind = "FileClass"
properties = { summary = "String" }
[class.file]
kind = "FileClass"
properties = { name = "String" }
[class.patch]
kind = "FileClass"
properties = { name = "String" }
[class.bug]
kind = "IssueClass"
[class.bug.properties]
assignee = { type = "Link", to = "user" }
status = { type = "Link", to = "status" }
severity = { type = "Link", to = "severity" }
keywords = { type = "Multilink", to = "keyword" }
[class.task]
kind = "IssueClass"
[class.task.properties]
assignedto = { type = "Multilink", to = "user" }
status = { type = "Link", to = "status" }
keywords = { type = "Multilink", to = "keyword" }

[[grant]]
roles = ["User"]
permission = "View"
class = ["msg", "file"]

[detectors]
statusauditor = { classes = ["task"] }
nosyreaction = { classes = ["bug", "task"] }
messagesummary = { classes = ["msg", "note"] }
userauditor = { classes = ["user", "person"] }
no_texthtml = { classes = ["file", "patch"] }
preset_new = true
init_severity = true
patches_text_plain = { classes = ["file", "patch"] }
patches_keyword = { classes = ["bug", "task"] }
"#;

const DEVEL_LIKE_DATA: &str = r#"
[[create]]
class = "user"
props = ["username=admin", "password=${admin_password}", "address=${admin_email}", "roles=Admin"]
[[create]]
class = "user"
props = ["username=anonymous", "roles=Anonymous"]
[[create]]
class = "status"
props = ["name=new"]
[[create]]
class = "status"
props = ["name=unread"]
[[create]]
class = "status"
props = ["name=chatting"]
[[create]]
class = "status"
props = ["name=resolved"]
[[create]]
class = "severity"
props = ["name=normal"]
[[create]]
class = "severity"
props = ["name=critical"]
[[create]]
class = "keyword"
props = ["name=patch"]
[[create]]
class = "keyword"
props = ["name=other"]
"#;

fn devel_like(name: &str, settings: &[&str]) -> tracker_common::TestTracker {
    tracker_common::custom(name, DEVEL_LIKE, DEVEL_LIKE_DATA, settings)
}

#[test]
fn preset_new_and_init_severity_on_bug() {
    let t = devel_like("det-presets", &[]);
    let id = t.create("bug", &["title=x"]);
    let d = format!("bug{id}");
    assert_eq!(t.prop(&d, "status"), s("1"), "new");
    assert_eq!(t.prop(&d, "severity"), s("1"), "normal");
    let id = t.create("bug", &["title=y", "status=resolved", "severity=critical"]);
    let d = format!("bug{id}");
    assert_eq!(t.prop(&d, "status"), s("4"));
    assert_eq!(t.prop(&d, "severity"), s("2"));
    // Only on create, and only on bug.
    t.call(&admin(), "set", &[&d, "status=", "severity="])
        .unwrap();
    assert_eq!(t.prop(&d, "status"), Value::Nil);
    let task = t.create("task", &["title=t"]);
    assert_eq!(t.prop(&format!("task{task}"), "status"), s("2"), "unread");
    // Roundup's KeyError when the status is gone.
    t.call(&admin(), "action", &["retire", "status1"]).unwrap();
    let (_, text) = fault(t.call(&admin(), "create", &["bug", "title=z"]));
    assert_eq!(
        text,
        "<class 'KeyError'>:'No key (name) value \"new\" for \"status\"'"
    );
}

#[test]
fn status_auditor_on_task() {
    let t = devel_like("det-status-task", &[]);
    let id = t.create("task", &["title=x"]);
    let d = format!("task{id}");
    assert_eq!(t.prop(&d, "status"), s("2"), "unread");
    let m = t.create("msg", &["content=hi"]);
    t.call(&admin(), "set", &[&d, &format!("messages={m}")])
        .unwrap();
    assert_eq!(t.prop(&d, "status"), s("3"), "chatting");
    // Without unread, resolved and done-cbb, Roundup's chatty fails the set.
    for st in ["2", "4"] {
        t.call(&admin(), "action", &["retire", &format!("status{st}")])
            .unwrap();
    }
    let m = t.create("msg", &["content=again"]);
    let (_, text) = fault(t.call(&admin(), "set", &[&d, &format!("messages=+{m}")]));
    assert_eq!(text, format!("{USAGE}list index out of range"));
    // The failed set changed nothing.
    assert_eq!(t.prop(&d, "messages"), list(&["1"]));
}

#[test]
fn nosy_on_bug_and_task_with_a_multilink_assignee() {
    let t = devel_like("det-nosy-devel", &["mail_debug=mail.log"]);
    let joe = t.user("joe", "User");
    let bob = t.user("bob", "User");
    let (jid, bid) = (joe.id.to_string(), bob.id.to_string());
    // task.assignedto is a Multilink: every assignee joins the nosy list.
    let task = t.create("task", &["title=t", &format!("assignedto={jid},{bid}")]);
    let td = format!("task{task}");
    assert_eq!(t.prop(&td, "nosy"), list(&[&jid, &bid]));
    // bug has no assignedto (its assignee is not looked at, as in Roundup);
    // the author of the first message joins.
    let m = t.create("msg", &["content=first", &format!("author={jid}")]);
    let bug = t.create(
        "bug",
        &[
            "title=b",
            &format!("assignee={bid}"),
            &format!("messages={m}"),
        ],
    );
    let bd = format!("bug{bug}");
    assert_eq!(t.prop(&bd, "nosy"), list(&[&jid]));
    // A new message on the task is mailed to its nosy list (not the author).
    let m2 = t.create("msg", &["content=News.", &format!("author={jid}")]);
    t.call(&admin(), "set", &[&td, &format!("messages={m2}")])
        .unwrap();
    let queued = t.outbox();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let mail = from_queue_file(&std::fs::read_to_string(&queued[0]).unwrap()).unwrap();
    assert_eq!(mail.to, ["bob@example.com"]);
    assert_eq!(mail.subject, format!("[task{task}] t"));
    assert_eq!(t.prop(&format!("msg{m2}"), "recipients"), list(&[&bid]));
    let Value::String(mid) = t.prop(&format!("msg{m2}"), "messageid") else {
        panic!("a message id");
    };
    assert!(mid.ends_with(&format!(".task{task}@example.com>")), "{mid}");
}

#[test]
fn message_summary_on_msg_and_note_follows_keep_quoted_text() {
    let text = "content=> quoted\nresponse line. more";
    let t = devel_like("det-summary", &[]);
    for class in ["msg", "note"] {
        let id = t.create(class, &[text]);
        assert_eq!(
            t.prop(&format!("{class}{id}"), "summary"),
            s("> quoted\nresponse line."),
            "{class}: keep_quoted_text = yes (Roundup's default)"
        );
    }
    let t = devel_like("det-summary-no", &["mailgw.keep_quoted_text=no"]);
    let id = t.create("note", &[text]);
    assert_eq!(
        t.prop(&format!("note{id}"), "summary"),
        s("response line. more")
    );
    // [mailgw] eol_re and blankline_re decide lines and sections.
    let t = devel_like(
        "det-summary-re",
        &["mailgw.eol_re=;", "mailgw.blankline_re=XX"],
    );
    let id = t.create("msg", &["content=one; two XX three"]);
    assert_eq!(t.prop(&format!("msg{id}"), "summary"), s("one"));
    let id = t.create("msg", &["content=no stop XX three. four"]);
    assert_eq!(t.prop(&format!("msg{id}"), "summary"), s("no stop "));
}

#[test]
fn user_auditor_on_another_class_checks_against_users() {
    let t = devel_like("det-person", &[]);
    let bad = |props: &[&str]| {
        let mut params = vec!["person"];
        params.extend_from_slice(props);
        fault(t.call(&admin(), "create", &params)).1
    };
    assert_eq!(
        bad(&["username=a b"]),
        format!("{USAGE}Username/Login Name must consist only of the letters a-z (any case), digits 0-9 and the symbols: @._-!+%")
    );
    assert_eq!(
        bad(&["address=admin@example.com"]),
        format!("{USAGE}Email address admin@example.com already in use")
    );
    t.create("person", &["username=p", "address=p@example.com"]);
}

#[test]
fn no_texthtml_and_patches_text_plain_on_file_and_patch() {
    let t = devel_like("det-files", &[]);
    for class in ["file", "patch"] {
        let id = t.create(
            class,
            &["name=page.html", "type=text/html", "content=<p>x</p>"],
        );
        let d = format!("{class}{id}");
        assert_eq!(t.prop(&d, "type"), s("text/plain"), "{d}");
        t.call(&admin(), "set", &[&d, "type=image/png"]).unwrap();
        t.call(&admin(), "set", &[&d, "type=text/html"]).unwrap();
        assert_eq!(t.prop(&d, "type"), s("text/plain"), "{d} set");
        let id = t.create(
            class,
            &["name=x.py", "type=application/x-python", "content=pass"],
        );
        assert_eq!(t.prop(&format!("{class}{id}"), "type"), s("text/plain"));
        let id = t.create(class, &["name=x.PATCH", "type=a/b", "content=x"]);
        assert_eq!(
            t.prop(&format!("{class}{id}"), "type"),
            s("a/b"),
            "case matters"
        );
        // Roundup's patches_text_plain reads newvalues['name'].
        let (_, text) = fault(t.call(&admin(), "create", &[class, "content=x"]));
        assert_eq!(text, "<class 'KeyError'>:'name'");
    }
}

#[test]
fn patches_keyword_on_bug_and_task() {
    let t = devel_like("det-patchkw", &[]);
    let diff = t.create("file", &["name=fix.diff", "content=-a\n+b\n"]);
    let txt = t.create("file", &["name=notes.txt", "content=n"]);
    let task = t.create("task", &["title=t", &format!("files={diff}")]);
    assert_eq!(t.prop(&format!("task{task}"), "keywords"), list(&["1"]));
    // A set adding a patch to a bug keeps the keywords given and adds `patch`.
    let bug = t.create("bug", &["title=b", &format!("files={txt}")]);
    let bd = format!("bug{bug}");
    assert_eq!(t.prop(&bd, "keywords"), list(&[]));
    t.call(&admin(), "set", &[&bd, "keywords=other"]).unwrap();
    t.call(&admin(), "set", &[&bd, &format!("files=+{diff}")])
        .unwrap();
    assert_eq!(t.prop(&bd, "keywords"), list(&["1", "2"]));
    // Files already on the item do not count again; removing `patch` sticks.
    t.call(
        &admin(),
        "set",
        &[&bd, "keywords=other", &format!("files={txt},{diff}")],
    )
    .unwrap();
    assert_eq!(t.prop(&bd, "keywords"), list(&["2"]));
    // Roundup's KeyError when there is no keyword `patch`.
    t.call(&admin(), "action", &["retire", "keyword1"]).unwrap();
    let (_, text) = fault(t.call(
        &admin(),
        "create",
        &["task", "title=u", &format!("files={diff}")],
    ));
    assert_eq!(
        text,
        "<class 'KeyError'>:'No key (name) value \"patch\" for \"keyword\"'"
    );
}
