//! `demo`: a ready-to-use tracker like Roundup's `roundup-demo`: the classic
//! template, users admin/admin and demo/demo (role User), and one sample issue so
//! that the sample session of Roundup's XML-RPC documentation works verbatim.

use super::init::{init, InitError};
use super::Tracker;
use crate::api::args::props_from_args;
use crate::hyperdb::Date;
use crate::items::{self, Ctx};
use crate::security::UserCtx;
use crate::xmlrpc::Value;
use std::path::Path;

/// Creates the demo tracker in `dir`.
pub fn create(dir: &Path) -> Result<(), InitError> {
    init(
        dir,
        "admin",
        None,
        &[
            "admin_email=admin@example.com".into(),
            "mail_domain=example.com".into(),
            format!(
                "mail_debug={}",
                std::path::absolute(dir)
                    .unwrap_or(dir.to_path_buf())
                    .join("mail.log")
                    .display()
            ),
            "tracker_web=http://localhost:8917/demo/".into(),
        ],
    )?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "demo".into());
    let tracker = Tracker::open(dir, &name)?;
    let admin = UserCtx {
        id: 1,
        username: "admin".into(),
        roles: vec!["admin".into()],
    };
    let data = |e: crate::error::Error| InitError::Data(e.to_string());
    let mut tx = tracker
        .store
        .write()
        .map_err(|e| InitError::Data(e.to_string()))?;
    {
        let mut ctx = Ctx {
            tx: &mut *tx,
            tracker: &tracker,
            user: &admin,
            now: Date::now(),
            outbox: Vec::new(),
            burned_ids: Vec::new(),
        };
        for (cn, args) in [
            (
                "user",
                vec![
                    "username=demo",
                    "password=demo",
                    "address=demo@example.com",
                    "realname=Demo User",
                    "roles=User",
                ],
            ),
            (
                "issue",
                vec!["title=yes, this is a sample issue", "priority=bug"],
            ),
        ] {
            let class = ctx.class(cn).map_err(data)?.clone();
            let args: Vec<Value> = args.into_iter().map(Value::str).collect();
            let changes = props_from_args(&mut ctx, &class, &args, None).map_err(data)?;
            items::create(&mut ctx, &class, changes).map_err(data)?;
        }
    }
    tx.commit().map_err(|e| InitError::Data(e.to_string()))?;
    Ok(())
}
