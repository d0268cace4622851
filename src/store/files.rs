//! Files that belong to a transaction: FileClass content at Roundup's paths
//! (`db/files/<class>/<id // 1000>/<class><id>`; the legacy flat
//! `db/files/<class><id>` is read too) and the mail outbox (`db/outbox/`).
//!
//! # The protocol, and why
//!
//! Content lives outside the database, so a commit has to make two things change
//! together that no single system call changes together. Requirements: no reader
//! ever sees content of a transaction that did not commit; after `kill -9` (or a
//! failed step) at any point, the files match the committed rows; a failure never
//! deletes the only copy of committed content; start-up repairs what a crash left.
//!
//! 1. **Stage**: the new content goes to `<final>.rxs-<T>.tmp` beside the final
//!    file, is fsynced, and so is its directory. `T` is the transaction's *token*,
//!    a number the same transaction writes into the database header's
//!    `user_version` (`PRAGMA user_version`, which SQLite changes atomically with
//!    the rest of the transaction). Nothing at the final path changes, so readers
//!    keep seeing the committed content. Roundup reads only `<final>` and, when that
//!    is missing, `<final>.tmp`: it never sees a staged file either.
//! 2. **Commit** the SQL transaction; then fsync the WAL, so that an OS crash
//!    cannot keep the renames below but lose the commit.
//! 3. **Install**: rename each staged file over its final path (atomic: the
//!    previous content stays in place until the new one replaces it) and fsync the
//!    directory.
//!
//! The staged file *is* the intent record: after a crash, a `*.rxs-<T>.tmp` whose
//! token is at most the database's `user_version` belongs to a committed
//! transaction and is installed; any other was never committed and is deleted.
//! Tokens grow by one per transaction that writes files, under the writer lock,
//! so an unfinished or rolled-back transaction's token is always above the
//! committed value. Recovery runs when the store opens (before anything is
//! served), for the item's own directory before new content is staged for it (so
//! that an older committed content can never be installed over a newer one
//! later), and after a failed install at the next write.
//!
//! Between 2 and 3, and when 3 fails (the rename returned an error: the call still
//! succeeds, since the transaction is committed), readers of this process find the
//! staged file through [`Pending`] and read it when their snapshot includes the
//! token. A reader whose snapshot is older than a commit may read the newer,
//! committed, content: content files are not versioned. Other processes (Roundup)
//! see the new content once it is installed, as with Roundup's own protocol.
//!
//! Why not a table of pending installs in the database: Roundup's tools would
//! leave it alone, but the database would no longer be exactly Roundup's (the
//! tests check that our daemon never changes `sqlite_master`), and a token in the
//! header does the same job. Roundup does not use `user_version`.
//!
//! Failpoints (see [`crate::failpoint`]): `content.stage` (error while writing the
//! staged file), `content.after_stage`, `content.before_commit`, `content.commit`
//! (error instead of `COMMIT`), `content.after_commit` (kill or sleep only),
//! `content.rename` (error instead of the rename) and `content.after_rename`.
//! They apply to outbox files too.

use crate::store::{Id, Result, StoreError, OUTBOX_DIR};
use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What marks a staged file: `<final>` + `.rxs-<token>` + `.tmp`.
const MARK: &str = ".rxs-";
const TMP_EXT: &str = ".tmp";

/// Where Roundup keeps the content of `<class><id>`.
pub fn path(files: &Path, class: &str, id: Id) -> PathBuf {
    files
        .join(class)
        .join((id / 1000).to_string())
        .join(format!("{class}{id}"))
}

/// Reads the content of an item, `None` if there is no file.
pub fn read(files: &Path, class: &str, id: Id) -> Result<Option<Vec<u8>>> {
    for p in [path(files, class, id), files.join(format!("{class}{id}"))] {
        if let Some(b) = read_if_exists(&p)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Where the content of `<class><id>` is staged (the root of the directories
/// [`stage`] may create) and installed: `files` and [`path`].
pub fn content_target(files: &Path, class: &str, id: Id) -> (PathBuf, PathBuf) {
    (files.to_path_buf(), path(files, class, id))
}

/// Where the queue file `<area>/<name>` of [`Tx::put_file_on_commit`] is staged
/// (its area's directory under `db_dir`) and installed; refused unless `area` is
/// [`OUTBOX_DIR`] and `name` a plain file name that no staged file could have.
///
/// [`Tx::put_file_on_commit`]: crate::store::Tx::put_file_on_commit
pub fn queue_target(db_dir: &Path, area: &str, name: &str) -> Result<(PathBuf, PathBuf)> {
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && !s.contains(['/', '\\', '\0'])
            && !s.contains(MARK)
    };
    if area != OUTBOX_DIR || !plain(name) {
        return Err(StoreError::Io(std::io::Error::other(format!(
            "not a queue file name: {area}/{name}"
        ))));
    }
    let root = db_dir.join(area);
    let final_path = root.join(name);
    Ok((root, final_path))
}

/// The bytes of `p`, `None` if it does not exist.
pub fn read_if_exists(p: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The staged name of `final_path` for transaction `token`.
fn staged_path(final_path: &Path, token: i64) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!("{name}{MARK}{token}{TMP_EXT}"))
}

/// A staged file found on disk: its path, its final path and its token.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    /// The staged file.
    pub tmp: PathBuf,
    /// Where it goes when installed.
    pub final_path: PathBuf,
    /// The token of the transaction that staged it.
    pub token: i64,
}

/// Parses a staged file's name in `dir`.
fn parse_staged(dir: &Path, name: &str) -> Option<Leftover> {
    let stem = name.strip_suffix(TMP_EXT)?;
    let (final_name, token) = stem.rsplit_once(MARK)?;
    if final_name.is_empty() || token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Leftover {
        tmp: dir.join(name),
        final_path: dir.join(final_name),
        token: token.parse().ok()?,
    })
}

/// Staged files in `dir` (for the final name `only`, if given), by token.
pub fn leftovers_in(dir: &Path, only: Option<&str>) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    for entry in entries_of(dir)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.contains(MARK) {
            continue;
        }
        if let Some(l) = parse_staged(dir, name) {
            let wanted = only.is_none_or(|o| l.final_path.file_name() == Some(o.as_ref()));
            if wanted {
                out.push(l);
            }
        }
    }
    out.sort_by_key(|l| l.token);
    Ok(out)
}

/// Every staged file under the database directory: `files/<class>/<n>/` and
/// `outbox/`, by token.
pub fn all_leftovers(db_dir: &Path) -> Result<Vec<Leftover>> {
    let mut out = leftovers_in(&db_dir.join(crate::store::OUTBOX_DIR), None)?;
    for dir in content_dirs(db_dir)? {
        out.extend(leftovers_in(&dir, None)?);
    }
    out.sort_by_key(|l| l.token);
    Ok(out)
}

/// The `files/<class>/<n>/` directories.
fn content_dirs(db_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for class_dir in subdirs(&db_dir.join("files"))? {
        out.extend(subdirs(&class_dir)?);
    }
    Ok(out)
}

/// What the protocol of earlier versions of this server can have left after a
/// crash: `<final>.old`, the previous content moved aside just before the new one
/// was renamed into place. Put back when the final file is missing (the new
/// content never arrived, so the old one is the committed one); otherwise which of
/// the two is committed cannot be known, and it is reported, not deleted.
pub fn restore_old_protocol(db_dir: &Path) -> Result<()> {
    for dir in content_dirs(db_dir)? {
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let Some(final_name) = name.to_str().and_then(|n| n.strip_suffix(".old")) else {
                continue;
            };
            let (old, final_path) = (dir.join(&name), dir.join(final_name));
            if final_path.exists() {
                tracing::warn!(file = %old.display(),
                    "previous content left by an earlier version after a crash; compare it with the current one and delete it");
            } else {
                rename_synced(&old, &final_path)?;
                tracing::warn!(file = %final_path.display(),
                    "restored content an earlier version had moved aside before a crash");
            }
        }
    }
    Ok(())
}

/// The entries of `dir`; none when it does not exist.
fn entries_of(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect::<std::io::Result<_>>()?),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in entries_of(dir)? {
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Finishes a leftover: installs it when its transaction committed (`token <=
/// committed`), deletes it otherwise. Returns true if it was installed.
pub fn resolve(l: &Leftover, committed: i64) -> Result<bool> {
    if l.token <= committed {
        rename_synced(&l.tmp, &l.final_path)?;
        Ok(true)
    } else {
        match fs::remove_file(&l.tmp) {
            Ok(()) => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Renames `from` over `to` and fsyncs the directory. A missing `from` means
/// another process installed it first, which is fine.
fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    crate::failpoint::hit("content.rename")?;
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(write_error(to, e)),
    }
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    crate::failpoint::hit("content.after_rename")?;
    Ok(())
}

/// A failed write of `path`: "not writable" in plain words when the file system
/// is read-only or permission is denied, the I/O error otherwise.
fn write_error(path: &Path, e: std::io::Error) -> StoreError {
    match e.kind() {
        ErrorKind::ReadOnlyFilesystem => StoreError::NotWritable {
            path: path.to_path_buf(),
            reason: "read-only file system".into(),
        },
        ErrorKind::PermissionDenied => StoreError::NotWritable {
            path: path.to_path_buf(),
            reason: "permission denied".into(),
        },
        _ => StoreError::Io(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents up to `root`), fsyncing each parent whose
/// entries changed, so a created directory survives an OS crash.
fn create_dir_synced(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| p.starts_with(root) && *p != dir) {
        create_dir_synced(root, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// New content written beside its final path, waiting for the commit.
#[derive(Debug)]
pub struct Staged {
    /// `(class, id)` for FileClass content; `None` for other files.
    item: Option<(String, Id)>,
    final_path: PathBuf,
    tmp: PathBuf,
    token: i64,
    /// The bytes, for reads within the same transaction (content only).
    content: Vec<u8>,
}

/// Writes `content` to the staged name of `final_path` (creating directories up
/// from `root`), then fsyncs it and its directory. FileClass content (`item`)
/// keeps a copy of the bytes for [`Staged::content`].
pub fn stage(
    root: &Path,
    final_path: &Path,
    item: Option<(String, Id)>,
    token: i64,
    content: &[u8],
) -> Result<Staged> {
    let dir = final_path.parent().unwrap_or(root);
    create_dir_synced(root, dir).map_err(|e| write_error(dir, e))?;
    let tmp = staged_path(final_path, token);
    let staged = Staged {
        content: if item.is_some() {
            content.to_vec()
        } else {
            Vec::new()
        },
        item,
        final_path: final_path.to_path_buf(),
        tmp,
        token,
    };
    let write = || -> std::io::Result<()> {
        crate::failpoint::hit("content.stage")?;
        let mut f = fs::File::create(&staged.tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        sync_dir(dir)
    };
    if let Err(e) = write().and_then(|()| crate::failpoint::hit("content.after_stage")) {
        staged.discard();
        return Err(write_error(&staged.tmp, e));
    }
    Ok(staged)
}

impl Staged {
    /// True if this is the content of `<class><id>`.
    pub fn is(&self, class: &str, id: Id) -> bool {
        self.item
            .as_ref()
            .is_some_and(|(c, i)| c == class && *i == id)
    }

    /// True if this replaces the same file as `other`.
    pub fn same_file(&self, other: &Path) -> bool {
        self.final_path == other
    }

    /// The staged bytes (FileClass content only).
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// The final path.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Moves the staged file over the final path (after the commit).
    pub fn install(&self) -> Result<()> {
        rename_synced(&self.tmp, &self.final_path)
    }

    /// Deletes the staged file of a transaction that did not commit. The final
    /// path is never touched.
    pub fn discard(&self) {
        if let Err(e) = fs::remove_file(&self.tmp) {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(file = %self.tmp.display(), error = %e,
                    "cannot delete an uncommitted staged file (it is removed at the next start)");
            }
        }
    }

    /// The entry for [`Pending`].
    pub fn pending(&self) -> (PathBuf, (i64, PathBuf)) {
        (self.final_path.clone(), (self.token, self.tmp.clone()))
    }
}

/// Files of committed (or committing) transactions not yet installed, by final
/// path: `(token, staged path)`. Readers of this process use it to see committed
/// content before it is renamed into place.
#[derive(Debug, Default)]
pub struct Pending {
    map: Mutex<HashMap<PathBuf, (i64, PathBuf)>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (i64, PathBuf)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers staged files just before their transaction commits.
    pub fn add(&self, staged: &[Staged]) {
        let mut map = self.lock();
        for s in staged {
            let (k, v) = s.pending();
            map.insert(k, v);
        }
    }

    /// Forgets `final_path` if it is still registered with `token`.
    pub fn remove(&self, final_path: &Path, token: i64) {
        let mut map = self.lock();
        if map.get(final_path).is_some_and(|(t, _)| *t == token) {
            map.remove(final_path);
        }
    }

    /// The staged file and token registered for `final_path`.
    pub fn get(&self, final_path: &Path) -> Option<(i64, PathBuf)> {
        let map = self.lock();
        if map.is_empty() {
            return None;
        }
        map.get(final_path).cloned()
    }

    /// Every registered entry (to retry their installation).
    pub fn entries(&self) -> Vec<Leftover> {
        self.lock()
            .iter()
            .map(|(f, (token, tmp))| Leftover {
                tmp: tmp.clone(),
                final_path: f.clone(),
                token: *token,
            })
            .collect()
    }
}

/// The content of `<class><id>` that a transaction staged itself, if any (the
/// latest of `staged`).
pub fn staged_content(staged: &[Staged], class: &str, id: Id) -> Option<Vec<u8>> {
    staged
        .iter()
        .rev()
        .find(|s| s.is(class, id))
        .map(|s| s.content().to_vec())
}

/// The content of `<class><id>` as a transaction that staged none sees it:
/// content committed but not yet renamed into place (in `pending`) when its
/// snapshot includes that commit (`sees(token)`), else the file under `files`
/// ([`read`]).
pub fn read_committed(
    pending: &Pending,
    files: &Path,
    class: &str,
    id: Id,
    sees: impl FnOnce(i64) -> Result<bool>,
) -> Result<Option<Vec<u8>>> {
    // Committed in this snapshot but not yet renamed into place.
    let final_path = path(files, class, id);
    if let Some((token, tmp)) = pending.get(&final_path) {
        if sees(token)? {
            if let Some(b) = read_if_exists(&tmp)? {
                return Ok(Some(b));
            }
        }
    }
    read(files, class, id)
}

/// Before the transaction `token` stages an item's content at `final_path`:
/// finishes, with `finish` (install or delete, as the backend tells their
/// fate), what earlier transactions left staged for the same file (a crash, a
/// failed install), and forgets it in `pending`, so that older content never
/// lands later.
pub fn finish_earlier(
    final_path: &Path,
    token: i64,
    pending: &Pending,
    mut finish: impl FnMut(&Leftover) -> Result<()>,
) -> Result<()> {
    if let (Some(dir), Some(name)) = (final_path.parent(), final_path.file_name()) {
        for l in leftovers_in(dir, name.to_str())? {
            if l.token == token {
                continue;
            }
            finish(&l)?;
            pending.remove(&l.final_path, l.token);
        }
    }
    Ok(())
}

/// Stages `content` for `final_path` ([`stage`]) in the transaction `token`,
/// in place of what it staged there before, and adds it to its `staged` files.
pub fn restage(
    staged: &mut Vec<Staged>,
    root: &Path,
    final_path: &Path,
    item: Option<(String, Id)>,
    token: i64,
    content: &[u8],
) -> Result<()> {
    staged.retain(|s| !s.same_file(final_path));
    staged.push(stage(root, final_path, item, token, content)?);
    Ok(())
}

/// Renames the staged files of the transaction `token`, just committed, into
/// place and forgets them in `pending`. A failed rename is logged and the file
/// stays registered (readers use the staged file until it is in place): returns
/// false then, to retry at the next write and at start-up.
pub fn install_committed(staged: &[Staged], pending: &Pending, token: i64) -> bool {
    let mut all = true;
    for s in staged {
        match s.install() {
            Ok(()) => pending.remove(s.final_path(), token),
            Err(e) => {
                tracing::error!(file = %s.final_path().display(), error = %e,
                    "cannot move committed content into place; retried at the next write and at start-up");
                all = false;
            }
        }
    }
    all
}

/// Installs `waiting`, committed files whose rename failed after their commit
/// (from [`Pending::entries`]), in the order given, and forgets them in
/// `pending`; stops at the first failure, logged. Returns true when all are in
/// place.
pub fn retry_installs(pending: &Pending, waiting: Vec<Leftover>) -> bool {
    for l in waiting {
        // Registered entries are committed by construction (removed if the
        // COMMIT failed), whatever the token says after a wrap-around.
        match resolve(&l, i64::MAX) {
            Ok(_) => pending.remove(&l.final_path, l.token),
            Err(e) => {
                tracing::error!(file = %l.final_path.display(), error = %e,
                    "committed content still not in place; retried at the next write");
                return false;
            }
        }
    }
    true
}

/// Refuses a database the daemon cannot write, in plain words: its directory
/// (SQLite creates `db-wal` and `db-shm` there; content goes to `files/`) and the
/// database files themselves. Opened for writing, not checked by mode bits, so a
/// read-only mount is caught for root too.
pub(crate) fn check_writable(db_dir: &Path, db_path: &Path) -> Result<()> {
    let not_writable = |path: &Path, e: std::io::Error| StoreError::NotWritable {
        path: path.to_path_buf(),
        reason: plain_io_reason(&e),
    };
    let probe = db_dir.join(format!(".rxs-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => return Err(not_writable(db_dir, e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db_path.display()));
        match std::fs::OpenOptions::new().write(true).open(&p) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(not_writable(&p, e)),
        }
    }
    Ok(())
}

/// An I/O error's reason without the OS error number.
fn plain_io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_round_trip() {
        let dir = Path::new("/t/files/file/0");
        let p = staged_path(&dir.join("file12"), 42);
        assert_eq!(p, dir.join("file12.rxs-42.tmp"));
        let l = parse_staged(dir, "file12.rxs-42.tmp").expect("parsed");
        assert_eq!(l.final_path, dir.join("file12"));
        assert_eq!(l.token, 42);
        // Roundup's own staging name and other files are not ours.
        assert_eq!(parse_staged(dir, "file12.tmp"), None);
        assert_eq!(parse_staged(dir, "file12"), None);
        assert_eq!(parse_staged(dir, "file12.rxs-.tmp"), None);
        assert_eq!(parse_staged(dir, "file12.rxs-4x.tmp"), None);
        assert_eq!(parse_staged(dir, ".rxs-4.tmp"), None);
    }

    #[test]
    fn resolve_installs_committed_and_deletes_the_rest() {
        let db = std::env::temp_dir().join(format!("rxs-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&db);
        fs::create_dir_all(&db).expect("mkdir");
        let root = db.join("files");
        let final_path = path(&root, "file", 1);
        let item = || Some(("file".to_string(), 1));
        stage(&root, &final_path, item(), 1, b"one")
            .and_then(|s| s.install())
            .expect("stage and install");
        assert_eq!(fs::read(&final_path).expect("read"), b"one");
        // Token 2 committed, token 3 not: 2 is installed, 3 deleted, and the
        // committed content is never removed.
        stage(&root, &final_path, item(), 2, b"two").expect("stage");
        stage(&root, &final_path, item(), 3, b"three").expect("stage");
        let left = all_leftovers(&db).expect("scan");
        assert_eq!(left.iter().map(|l| l.token).collect::<Vec<_>>(), vec![2, 3]);
        let dir = final_path.parent().expect("dir");
        assert_eq!(leftovers_in(dir, Some("file1")).expect("scan"), left);
        assert!(leftovers_in(dir, Some("file2")).expect("scan").is_empty());
        for l in &left {
            resolve(l, 2).expect("resolve");
        }
        assert_eq!(fs::read(&final_path).expect("read"), b"two");
        assert!(all_leftovers(&db).expect("scan").is_empty());
        // A discarded stage never touches the final file.
        stage(&root, &final_path, item(), 4, b"four")
            .expect("stage")
            .discard();
        assert_eq!(fs::read(&final_path).expect("read"), b"two");
        assert!(all_leftovers(&db).expect("scan").is_empty());
        let _ = fs::remove_dir_all(&db);
    }

    #[test]
    fn old_protocol_leftovers_are_restored_never_deleted() {
        let db = std::env::temp_dir().join(format!("rxs-old-{}", std::process::id()));
        let _ = fs::remove_dir_all(&db);
        let dir = db.join("files").join("msg").join("0");
        fs::create_dir_all(&dir).expect("mkdir");
        // msg1 was moved aside and the new content never arrived: put back.
        fs::write(dir.join("msg1.old"), b"committed").expect("write");
        // msg2 has both: which one is committed is unknown, both are kept.
        fs::write(dir.join("msg2.old"), b"old").expect("write");
        fs::write(dir.join("msg2"), b"new").expect("write");
        restore_old_protocol(&db).expect("restore");
        assert_eq!(fs::read(dir.join("msg1")).expect("read"), b"committed");
        assert!(!dir.join("msg1.old").exists());
        assert_eq!(fs::read(dir.join("msg2")).expect("read"), b"new");
        assert_eq!(fs::read(dir.join("msg2.old")).expect("read"), b"old");
        let _ = fs::remove_dir_all(&db);
    }
}
