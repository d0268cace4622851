//! devel/responsive `severityauditor.py`: `init_severity` (the template leaves it
//! unregistered; a tracker may register it).

use crate::error::Result;
use crate::items::{Changes, Ctx};
use crate::store::PropValue;

/// On creation: when no severity is given, set it to the severity `normal`
/// (Roundup's `KeyError` when there is none).
pub fn init_severity(ctx: &mut Ctx<'_>, changes: &mut Changes) -> Result<()> {
    if let Some(Some(_)) = changes.props.get("severity") {
        return Ok(());
    }
    let normal = super::lookup_key(ctx, "severity", "normal")?;
    changes
        .props
        .insert("severity", Some(PropValue::Link(normal)));
    Ok(())
}
