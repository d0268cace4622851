//! devel/responsive `no_texthtml.py`: files uploaded as `text/html` are stored as
//! `text/plain`, so that a browser never renders them as the tracker's own pages.

use crate::items::Changes;
use crate::store::PropValue;

/// On create and set: a `type` of exactly `text/html` becomes `text/plain`
/// (Roundup compares case-sensitively; `text/HTML` stays).
pub fn audit_html_files(changes: &mut Changes) {
    if matches!(changes.props.get("type"), Some(Some(PropValue::String(t))) if t == "text/html") {
        changes
            .props
            .insert("type", Some(PropValue::String("text/plain".into())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::PropMap;

    fn typed(t: Option<&str>) -> Option<Option<PropValue>> {
        let mut props = PropMap::new();
        props.insert("name", Some(PropValue::String("x".into())));
        if let Some(t) = t {
            props.insert("type", Some(PropValue::String(t.into())));
        }
        let mut changes = Changes {
            props,
            content: None,
        };
        audit_html_files(&mut changes);
        changes.props.get("type").cloned()
    }

    #[test]
    fn only_exact_text_html_changes() {
        let s = |x: &str| Some(Some(PropValue::String(x.into())));
        assert_eq!(typed(Some("text/html")), s("text/plain"));
        assert_eq!(typed(Some("text/HTML")), s("text/HTML"));
        assert_eq!(typed(Some("image/png")), s("image/png"));
        assert_eq!(typed(None), None);
    }
}
