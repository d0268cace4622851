//! `demo`: a ready-to-use tracker like Roundup's `roundup-demo`: the classic
//! template, users admin/admin and demo/demo (role User), and one sample issue so
//! that the sample session of Roundup's XML-RPC documentation works verbatim.

use super::init::{create_as_admin, init, InitError};
use crate::tracker::Tracker;
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
    let sample = |cn: &str, props: &[&str]| {
        (
            cn.to_string(),
            props.iter().map(|p| p.to_string()).collect(),
        )
    };
    create_as_admin(
        &tracker,
        &[
            sample(
                "user",
                &[
                    "username=demo",
                    "password=demo",
                    "address=demo@example.com",
                    "realname=Demo User",
                    "roles=User",
                ],
            ),
            // priority1 / status2, as the documentation's sample session shows them.
            sample(
                "issue",
                &[
                    "title=yes, this is a sample issue",
                    "priority=1",
                    "status=2",
                ],
            ),
        ],
    )
}
