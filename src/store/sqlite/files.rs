//! FileClass content files at Roundup's paths: `db/files/<class>/<id // 1000>/<class><id>`
//! (the legacy flat `db/files/<class><id>` is read too).

use super::super::{Id, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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
        match fs::read(&p) {
            Ok(b) => return Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// New content written to a temporary file, waiting for the transaction to commit.
#[derive(Debug)]
pub struct Staged {
    class: String,
    id: Id,
    path: PathBuf,
    tmp: PathBuf,
    old: PathBuf,
    content: Vec<u8>,
}

/// Writes `content` to `<path>.tmp` and syncs it.
pub fn stage(files: &Path, class: &str, id: Id, content: &[u8]) -> Result<Staged> {
    let path = path(files, class, id);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_file_name(format!("{class}{id}.tmp"));
    let old = path.with_file_name(format!("{class}{id}.old"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(Staged {
        class: class.to_string(),
        id,
        path,
        tmp,
        old,
        content: content.to_vec(),
    })
}

impl Staged {
    /// True if this is the content of `<class><id>`.
    pub fn is(&self, class: &str, id: Id) -> bool {
        self.class == class && self.id == id
    }

    /// The staged bytes.
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// Moves the file into place, keeping any previous content aside.
    pub fn install(&self) -> Result<()> {
        if self.path.exists() {
            fs::rename(&self.path, &self.old)?;
        }
        fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Undoes [`Staged::install`] after a failed commit.
    pub fn uninstall(&self) {
        let _ = fs::remove_file(&self.path);
        if self.old.exists() {
            let _ = fs::rename(&self.old, &self.path);
        }
    }

    /// Drops the temporary file of an abandoned transaction, and the previous
    /// content of a committed one.
    pub fn discard(&self) {
        let _ = fs::remove_file(&self.tmp);
        let _ = fs::remove_file(&self.old);
    }
}
