//! devel/responsive `patches.py`: `patches_text_plain` and `patches_keyword` (the
//! template leaves both unregistered; a tracker may register them).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::items::{Changes, Ctx};
use crate::schema::ClassDef;
use crate::store::{Id, Multilinks, PropValue};

/// `patchtypes`: what `patches_keyword` counts as a patch.
const PATCH_TYPES: [&str; 2] = [".diff", ".patch"];
/// `sourcetypes`: what `patches_text_plain` stores as text.
const SOURCE_TYPES: [&str; 3] = [".diff", ".patch", ".py"];

/// Python's `posixpath.splitext(name)[1]`: the last component's extension, from
/// its last dot, unless everything before that dot is dots.
fn extension(name: &str) -> &str {
    let start = name.rfind('/').map_or(0, |i| i + 1);
    match name[start..].rfind('.') {
        Some(dot) if name[start..start + dot].chars().any(|c| c != '.') => &name[start + dot..],
        _ => "",
    }
}

/// Python's `TypeError` for `posixpath.splitext(None)`.
fn none_name() -> Error {
    Error::TypeError("expected str, bytes or os.PathLike object, not NoneType".into())
}

/// On file creation: a file whose name ends in `.diff`, `.patch` or `.py` is
/// typed `text/plain`. Like Roundup, a file created without a name fails
/// (`KeyError: 'name'`).
pub fn patches_text_plain(changes: &mut Changes) -> Result<()> {
    let name = match changes.props.get("name") {
        None => return Err(Error::KeyError("name".into())),
        Some(None) => return Err(none_name()),
        Some(Some(PropValue::String(n))) => n,
        Some(Some(_)) => return Ok(()),
    };
    if SOURCE_TYPES.contains(&extension(name)) {
        changes
            .props
            .insert("type", Some(PropValue::String("text/plain".into())));
    }
    Ok(())
}

/// On create and set: when a file new to the item is named `*.diff` or `*.patch`,
/// the keyword `patch` is added to `keywords` (Roundup's `KeyError` when there is
/// no such keyword). Files are read from class `file`, keywords from `keyword`.
pub fn patches_keyword(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id: Option<Id>,
    changes: &mut Changes,
) -> Result<()> {
    let mut newfiles: BTreeSet<Id> = match changes.props.get("files") {
        None => BTreeSet::new(),
        Some(None) => return Err(Error::TypeError("'NoneType' object is not iterable".into())),
        Some(Some(PropValue::Multilink(f))) => f.iter().copied().collect(),
        Some(Some(_)) => BTreeSet::new(),
    };
    let old = match id {
        Some(id) => Some(ctx.item(class, id)?),
        None => None,
    };
    let old_ids = |prop: &str| match old.as_ref().and_then(|o| o.get(prop)) {
        Some(PropValue::Multilink(v)) => v.clone(),
        _ => Vec::new(),
    };
    for f in old_ids("files") {
        newfiles.remove(&f);
    }
    let tracker = ctx.tracker;
    let Some(file_class) = tracker.schema.class("file") else {
        return Ok(());
    };
    let mut newpatch = false;
    for f in newfiles {
        let Some(file) = ctx.tx.get(file_class, f, Multilinks::None)? else {
            return Err(Error::IndexError(format!("file has no node {f}")));
        };
        let name = match file.get("name") {
            Some(PropValue::String(n)) => n,
            _ => return Err(none_name()),
        };
        if PATCH_TYPES.contains(&extension(name)) {
            newpatch = true;
            break;
        }
    }
    if !newpatch {
        return Ok(());
    }
    let patch = super::lookup_key(ctx, "keyword", "patch")?;
    let oldkeywords = old_ids("keywords");
    if id.is_some() && oldkeywords.contains(&patch) {
        return Ok(());
    }
    let mut keywords = match changes.props.get("keywords") {
        None => oldkeywords,
        Some(None) => {
            return Err(Error::AttributeError(
                "'NoneType' object has no attribute 'append'".into(),
            ))
        }
        Some(Some(PropValue::Multilink(k))) => k.clone(),
        Some(Some(_)) => return Ok(()),
    };
    // Roundup appends even when the given list has it already; a Multilink
    // holds each id once.
    if !keywords.contains(&patch) {
        keywords.push(patch);
    }
    changes
        .props
        .insert("keywords", Some(PropValue::Multilink(keywords)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::extension;

    /// As Python's `posixpath.splitext(name)[1]` answers them.
    #[test]
    fn extensions_like_posixpath() {
        for (name, ext) in [
            ("a.patch", ".patch"),
            (".patch", ""),
            ("a/.patch", ""),
            ("x..patch", ".patch"),
            ("..patch", ""),
            ("a.b/c", ""),
            ("A.PATCH", ".PATCH"),
            ("a.patch/", ""),
            (".a.patch", ".patch"),
            ("...", ""),
            ("", ""),
        ] {
            assert_eq!(extension(name), ext, "{name}");
        }
    }
}
