//! The item layer (Roundup's hyperdb create/set/retire/restore) used directly, in a
//! transaction of `api::Caller`: keys, links, the journal Roundup writes (read back
//! from the database), FileClass content, and that an error rolls everything back.

mod tracker_common;

use roundup_xmlrpc::api::Caller;
use roundup_xmlrpc::error::Error;
use roundup_xmlrpc::items::{self, Changes, PropMap};
use roundup_xmlrpc::store::{Multilinks, PropValue};
use tracker_common::{admin, classic, TestTracker};

fn changes(props: &[(&str, Option<PropValue>)]) -> Changes {
    let mut map = PropMap::new();
    for (k, v) in props {
        map.insert(k, v.clone());
    }
    Changes {
        props: map,
        content: None,
    }
}

fn text(v: &str) -> Option<PropValue> {
    Some(PropValue::String(v.into()))
}

/// Runs `f` in a committed write transaction as admin.
fn write<T>(
    t: &TestTracker,
    f: impl FnOnce(&mut roundup_xmlrpc::items::Ctx<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let user = admin();
    Caller::new(&t.tracker, &user).transaction(true, f)
}

fn class<'a>(t: &'a TestTracker, name: &str) -> &'a roundup_xmlrpc::schema::ClassDef {
    t.tracker.schema.class(name).expect("a classic class")
}

#[test]
fn create_writes_the_item_and_its_journal() {
    let t = classic("items-create", &[]);
    let keyword = class(&t, "keyword");
    let id = write(&t, |ctx| {
        items::create(ctx, keyword, changes(&[("name", text("rust"))]))
    })
    .unwrap();
    assert_eq!(id, 1);
    assert_eq!(t.journal("keyword", "1"), [("create".into(), "{}".into())]);
    let issue = class(&t, "issue");
    let iid = write(&t, |ctx| {
        items::create(
            ctx,
            issue,
            changes(&[
                ("title", text("x")),
                ("keyword", Some(PropValue::Multilink(vec![1]))),
            ]),
        )
    })
    .unwrap();
    // Linking writes a `link` entry on the target (do_journal), Roundup's repr.
    assert_eq!(
        t.journal("keyword", "1")[1],
        ("link".into(), format!("('issue', '{iid}', 'keyword')"))
    );
    // The item is there, with the automatic properties.
    let item = write(&t, |ctx| ctx.item(issue, iid)).unwrap();
    assert_eq!(item.get("title"), text("x").as_ref());
    assert_eq!(item.get("creator"), Some(&PropValue::Link(1)));
    assert!(item.get("creation").is_some() && item.get("activity").is_some());
}

#[test]
fn set_journals_the_old_values_and_answers_the_changes() {
    let t = classic("items-set", &[]);
    let issue = class(&t, "issue");
    let iid = write(&t, |ctx| {
        items::create(ctx, issue, changes(&[("title", text("old"))]))
    })
    .unwrap();
    let changed = write(&t, |ctx| {
        items::set(
            ctx,
            issue,
            iid,
            changes(&[("title", text("new")), ("status", Some(PropValue::Link(1)))]),
        )
    })
    .unwrap();
    // Only what changed: the status auditor already set `unread` (1).
    assert_eq!(
        changed.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["title"]
    );
    let journal = t.journal("issue", &iid.to_string());
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[1], ("set".into(), "{'title': 'old'}".into()));
    // Nothing changed: no journal entry.
    write(&t, |ctx| {
        items::set(ctx, issue, iid, changes(&[("title", text("new"))]))
    })
    .unwrap();
    assert_eq!(t.journal("issue", &iid.to_string()).len(), 2);
    assert_eq!(
        write(&t, |ctx| items::set(ctx, issue, 99, changes(&[]))),
        Err(Error::IndexError("no such issue 99".into()))
    );
}

#[test]
fn keys_are_unique_among_live_items() {
    let t = classic("items-keys", &[]);
    let keyword = class(&t, "keyword");
    let create = |name: &str| {
        write(&t, |ctx| {
            items::create(ctx, keyword, changes(&[("name", text(name))]))
        })
    };
    let k1 = create("k").unwrap();
    assert_eq!(
        create("k"),
        Err(Error::ValueError("node with key \"k\" exists".into()))
    );
    assert_eq!(
        write(&t, |ctx| items::create(ctx, keyword, changes(&[]))),
        Err(Error::ValueError(
            "key property \"name\" is required".into()
        ))
    );
    write(&t, |ctx| items::retire(ctx, keyword, k1)).unwrap();
    let k2 = create("k").unwrap();
    assert!(k2 > k1);
    assert_eq!(
        write(&t, |ctx| items::restore(ctx, keyword, k1)),
        Err(Error::KeyError(
            "Key property (name) of retired node clashes with existing one (k)".into()
        ))
    );
    let actions: Vec<String> = t
        .journal("keyword", &k1.to_string())
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(actions, ["create", "retired"]);
    write(&t, |ctx| items::retire(ctx, keyword, k2)).unwrap();
    write(&t, |ctx| items::restore(ctx, keyword, k1)).unwrap();
    assert_eq!(
        t.journal("keyword", &k1.to_string()).last().unwrap().0,
        "restored"
    );
}

#[test]
fn user_names_may_not_differ_only_in_case() {
    let t = classic("items-case", &[]);
    let user = class(&t, "user");
    let made = write(&t, |ctx| {
        items::create(ctx, user, changes(&[("username", text("Admin"))]))
    });
    assert_eq!(
        made,
        Err(Error::ValueError(
            "node with key \"Admin\" exists (user names that differ only in case clash)".into()
        ))
    );
}

#[test]
fn links_must_point_at_items() {
    let t = classic("items-links", &[]);
    let issue = class(&t, "issue");
    assert_eq!(
        write(&t, |ctx| {
            items::create(
                ctx,
                issue,
                changes(&[
                    ("title", text("x")),
                    ("priority", Some(PropValue::Link(42))),
                ]),
            )
        }),
        Err(Error::IndexError("priority has no node 42".into()))
    );
    assert_eq!(
        write(&t, |ctx| {
            items::create(
                ctx,
                issue,
                changes(&[
                    ("title", text("x")),
                    ("nosy", Some(PropValue::Multilink(vec![1, 9]))),
                ]),
            )
        }),
        Err(Error::IndexError("user has no node 9".into()))
    );
}

#[test]
fn an_error_rolls_the_whole_call_back() {
    let t = classic("items-rollback", &[]);
    let keyword = class(&t, "keyword");
    let result: Result<(), Error> = write(&t, |ctx| {
        items::create(ctx, keyword, changes(&[("name", text("one"))]))?;
        items::create(ctx, keyword, changes(&[("name", text("one"))]))?;
        Ok(())
    });
    assert!(result.is_err());
    let user = admin();
    let ids = Caller::new(&t.tracker, &user)
        .transaction(false, |ctx| Ok(ctx.tx.list(keyword)?))
        .unwrap();
    assert!(
        ids.is_empty(),
        "the first create was rolled back too: {ids:?}"
    );
    // Both ids stay used, as in Roundup.
    let next = write(&t, |ctx| {
        items::create(ctx, keyword, changes(&[("name", text("two"))]))
    })
    .unwrap();
    assert_eq!(next, 3);
}

#[test]
fn file_content_lives_beside_the_item() {
    let t = classic("items-content", &[]);
    let file = class(&t, "file");
    let mut c = changes(&[("name", text("a.txt")), ("type", text("text/plain"))]);
    c.content = Some(b"hello".to_vec());
    let id = write(&t, |ctx| items::create(ctx, file, c)).unwrap();
    let user = admin();
    let read = |t: &TestTracker| {
        Caller::new(&t.tracker, &user)
            .transaction(false, |ctx| Ok(ctx.tx.content(file, id)?))
            .unwrap()
    };
    assert_eq!(read(&t), Some(b"hello".to_vec()));
    // New content replaces it, and `set` reports it.
    let mut c = changes(&[]);
    c.content = Some(b"bye".to_vec());
    let changed = write(&t, |ctx| items::set(ctx, file, id, c)).unwrap();
    assert_eq!(
        changed.get("content"),
        Some(&Some(PropValue::String("bye".into())))
    );
    assert_eq!(read(&t), Some(b"bye".to_vec()));
    // A FileClass item needs content.
    assert_eq!(
        write(&t, |ctx| items::create(
            ctx,
            file,
            changes(&[("name", text("b"))])
        )),
        Err(Error::KeyError("content".into()))
    );
    let item = Caller::new(&t.tracker, &user)
        .transaction(false, |ctx| Ok(ctx.tx.get(file, id, Multilinks::None)?))
        .unwrap()
        .expect("the file item");
    assert_eq!(item.get("name"), text("a.txt").as_ref());
}
