//! Peak-memory check for hostile documents (one test per binary, so that the
//! process-wide high-water mark is not disturbed by parallel tests).

mod require;

use roundup_xmlrpc::xmlrpc::{decode_request, Limits};

/// A field of /proc/self/status in KiB, if the platform has it.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn nested(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let mut s = String::from("<methodCall><methodName>m</methodName><params><param><value>");
    s.reserve_exact(depth * (open.len() + close.len()) + 200);
    for _ in 0..depth {
        s.push_str(open);
    }
    for _ in 0..depth {
        s.push_str(close);
    }
    s.push_str("</value></param></params></methodCall>");
    s.into_bytes()
}

#[test]
fn hostile_documents_use_bounded_memory() {
    if status_kib("VmHWM:").is_none() {
        require::missing("/proc/self/status with VmHWM (Linux)");
        return;
    }
    let limits = Limits {
        max_body_bytes: 64 << 20,
        ..Limits::default()
    };
    let docs: Vec<(&str, Vec<u8>)> = vec![
        (
            "1M nested arrays",
            nested(1_000_000, "<array><data><value>", "</value></data></array>"),
        ),
        (
            "1M nested structs",
            nested(
                1_000_000,
                "<struct><member><name>a</name><value>",
                "</value></member></struct>",
            ),
        ),
        ("1M nested unknown elements", "<a>".repeat(1_000_000).into_bytes()),
        (
            "20 MB string",
            format!(
                "<methodCall><methodName>m</methodName><params><param><value><string>{}</string></value></param></params></methodCall>",
                "x".repeat(20 << 20)
            )
            .into_bytes(),
        ),
        (
            "4M values",
            format!(
                "<methodCall><methodName>m</methodName><params><param><value><array><data>{}</data></array></value></param></params></methodCall>",
                "<value/>".repeat(4_000_000)
            )
            .into_bytes(),
        ),
    ];
    for (name, doc) in &docs {
        // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let rss_before = status_kib("VmRSS:").unwrap_or(0);
        let result = decode_request(doc, &limits);
        assert!(result.is_err(), "{name} was accepted");
        let hwm_after = status_kib("VmHWM:").unwrap_or(0);
        let grown = hwm_after.saturating_sub(rss_before);
        eprintln!(
            "{name}: {} KiB input, peak grew {grown} KiB ({})",
            doc.len() / 1024,
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
        // The decoder may allocate up to one string limit (8 MiB) plus parser
        // buffers; anything near the input size would mean unbounded building.
        assert!(grown < 48 * 1024, "{name}: peak memory grew by {grown} KiB");
    }
}
