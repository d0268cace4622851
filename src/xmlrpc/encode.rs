//! Response encoder producing the exact layout of Python's
//! `xmlrpc.client.dumps(..., methodresponse=True, allow_none=True)`.
//!
//! Output is UTF-8 with the header `<?xml version='1.0'?>`, one value per line
//! as Python writes it (`<value><nil/></value>` without a trailing newline,
//! like Python). The whole document is written into one pre-sized `Vec<u8>`;
//! no allocation happens per value.
//!
//! Deliberate differences from Python, all of which Python's parser reads back
//! to the intended value:
//!
//! * a carriage return in text is written as `&#13;` (Python writes it raw,
//!   and every XML parser then turns it into `\n`);
//! * characters that XML 1.0 forbids (C0 controls other than tab, LF and CR;
//!   U+FFFE; U+FFFF) are replaced by U+FFFD REPLACEMENT CHARACTER, where
//!   Python would emit them raw and produce a document no parser accepts;
//! * an `Int` outside the 32-bit range is written as `<i8>` (Python raises
//!   OverflowError), which Python's client reads as an `int`;
//! * `DateTime` text is escaped like strings (Python writes it verbatim).
//!
//! Doubles are written like Python's `repr(float)`: `1.0`, `3.5`, `1e+20`,
//! `1e-05`, `inf`, `-inf`, `nan`. Base64 is written like
//! `base64.encodebytes`: 76-character lines, each ending in `\n`.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::value::{Fault, MethodCall, Value};

const XML_HEADER: &[u8] = b"<?xml version='1.0'?>\n";

/// Encodes a successful `<methodResponse>` carrying `value`.
pub fn encode_response(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + estimate(value));
    out.extend_from_slice(XML_HEADER);
    out.extend_from_slice(b"<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.extend_from_slice(b"</param>\n</params>\n</methodResponse>\n");
    out
}

/// Encodes a `<methodResponse>` carrying `fault`.
pub fn encode_fault(fault: &Fault) -> Vec<u8> {
    let mut out = Vec::with_capacity(320 + fault.string.len());
    out.extend_from_slice(XML_HEADER);
    out.extend_from_slice(
        b"<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n",
    );
    write_value(&mut out, &Value::Int(i64::from(fault.code)));
    out.extend_from_slice(b"</member>\n<member>\n<name>faultString</name>\n<value><string>");
    write_escaped(&mut out, &fault.string);
    out.extend_from_slice(
        b"</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n",
    );
    out
}

/// Encodes a `<methodCall>` exactly as Python's `xmlrpc.client.dumps(params, name,
/// allow_none=True)` does; used by clients, tests and benchmarks.
pub fn encode_call(call: &MethodCall) -> Vec<u8> {
    let mut size = 128 + call.name.len();
    for p in &call.params {
        size += 20 + estimate(p);
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(XML_HEADER);
    out.extend_from_slice(b"<methodCall>\n<methodName>");
    write_escaped(&mut out, &call.name);
    out.extend_from_slice(b"</methodName>\n<params>\n");
    for p in &call.params {
        out.extend_from_slice(b"<param>\n");
        write_value(&mut out, p);
        out.extend_from_slice(b"</param>\n");
    }
    out.extend_from_slice(b"</params>\n</methodCall>\n");
    out
}

/// A cheap upper-bound-ish guess of the encoded size, so the output buffer is
/// allocated once for typical responses.
fn estimate(value: &Value) -> usize {
    match value {
        Value::String(s) | Value::DateTime(s) => 40 + s.len() + s.len() / 8,
        Value::Base64(b) => 40 + b.len() / 57 * 77 + 78,
        Value::Array(items) => 40 + items.iter().map(estimate).sum::<usize>(),
        Value::Struct(members) => {
            40 + members
                .iter()
                .map(|(n, v)| 40 + n.len() + estimate(v))
                .sum::<usize>()
        }
        Value::Int(_) | Value::Bool(_) | Value::Nil => 40,
        Value::Double(_) => 64,
    }
}

/// Appends one `<value>` element in Python's layout. Recursion depth equals the
/// value's nesting depth, which the decoder bounds and server results keep small.
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => out.extend_from_slice(b"<value><nil/></value>"),
        Value::Bool(b) => out.extend_from_slice(if *b {
            b"<value><boolean>1</boolean></value>\n"
        } else {
            b"<value><boolean>0</boolean></value>\n"
        }),
        Value::Int(n) => {
            let tag = if i32::try_from(*n).is_ok() {
                "int"
            } else {
                "i8"
            };
            scalar(out, tag, |out| write_int(out, *n));
        }
        Value::Double(x) => scalar(out, "double", |out| write_python_float(out, *x)),
        Value::String(s) => scalar(out, "string", |out| write_escaped(out, s)),
        Value::DateTime(s) => scalar(out, "dateTime.iso8601", |out| write_escaped(out, s)),
        Value::Base64(bytes) => scalar(out, "base64", |out| {
            out.push(b'\n');
            write_base64_lines(out, bytes);
        }),
        Value::Array(items) => {
            out.extend_from_slice(b"<value><array><data>\n");
            for item in items {
                write_value(out, item);
            }
            out.extend_from_slice(b"</data></array></value>\n");
        }
        Value::Struct(members) => {
            out.extend_from_slice(b"<value><struct>\n");
            for (name, v) in members {
                out.extend_from_slice(b"<member>\n<name>");
                write_escaped(out, name);
                out.extend_from_slice(b"</name>\n");
                write_value(out, v);
                out.extend_from_slice(b"</member>\n");
            }
            out.extend_from_slice(b"</struct></value>\n");
        }
    }
}

/// `<value><TAG>`, what `body` writes, then `</TAG></value>` and a newline.
fn scalar(out: &mut Vec<u8>, tag: &str, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"<value><");
    out.extend_from_slice(tag.as_bytes());
    out.push(b'>');
    body(out);
    out.extend_from_slice(b"</");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"></value>\n");
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Python's `base64.encodebytes`: 57 input bytes per 76-character line, every
/// line (including the last, partial one) followed by `\n`; nothing for no input.
fn write_base64_lines(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = out.len();
    let lines = bytes.len().div_ceil(57);
    let total = bytes.len().div_ceil(3) * 4 + lines;
    out.resize(start + total, 0);
    for chunk in bytes.chunks(57) {
        let len = chunk.len().div_ceil(3) * 4;
        // The slice was sized for exactly this output, so encoding cannot fail.
        let written = STANDARD
            .encode_slice(chunk, &mut out[start..start + len])
            .unwrap_or(len);
        out[start + written] = b'\n';
        start += written + 1;
    }
    out.truncate(start);
}

/// Which bytes `write_escaped` must look at: markup characters, CR, C0
/// controls, and 0xEF (the lead byte of U+FFFE/U+FFFF).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'\t' as usize] = false;
    t[b'\n' as usize] = false;
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[0xEF] = true;
    t
};

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Appends `s` escaped for XML text: `&`, `<`, `>` as Python does, CR as
/// `&#13;`, and characters illegal in XML 1.0 replaced by U+FFFD.
fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !SPECIAL[b as usize] {
            i += 1;
            continue;
        }
        let (rep, width): (&[u8], usize) = match b {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'\r' => (b"&#13;", 1),
            0xEF => {
                // U+FFFE is EF BF BE, U+FFFF is EF BF BF.
                if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
                {
                    (REPLACEMENT, 3)
                } else {
                    i += 1;
                    continue;
                }
            }
            _ => (REPLACEMENT, 1),
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(rep);
        i += width;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A fixed-size stack buffer for formatting one float without allocating.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends `x` formatted like Python's `repr(float)`: the shortest digits that
/// round-trip, in fixed notation when the decimal exponent is in [-4, 16),
/// otherwise as `d.ddde+XX`.
pub(crate) fn write_python_float(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    let mut sb = StackBuf {
        buf: [0; 48],
        len: 0,
    };
    // `{:e}` yields the shortest round-trip digits, e.g. "1.2345e-7" or "1e16";
    // 48 bytes always suffice for an f64, so this cannot fail.
    let _ = write!(sb, "{:e}", x.abs());
    let s = &sb.buf[..sb.len];
    let e_pos = s.iter().position(|&c| c == b'e').unwrap_or(s.len());
    let (mantissa, exp_text) = (&s[..e_pos], s.get(e_pos + 1..).unwrap_or(b"0"));
    let mut exp: i32 = 0;
    let mut exp_neg = false;
    for &c in exp_text {
        match c {
            b'-' => exp_neg = true,
            b'0'..=b'9' => exp = exp * 10 + i32::from(c - b'0'),
            _ => {}
        }
    }
    if exp_neg {
        exp = -exp;
    }
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &c in mantissa {
        if c.is_ascii_digit() && nd < digits.len() {
            digits[nd] = c;
            nd += 1;
        }
    }
    let digits = &digits[..nd.max(1)];
    let nd = digits.len() as i32;
    let decpt = exp + 1; // position of the decimal point relative to the digits
    if !(-4 < decpt && decpt <= 16) {
        out.push(digits[0]);
        if nd > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        write_int(out, i64::from(e));
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        for _ in 0..-decpt {
            out.push(b'0');
        }
        out.extend_from_slice(digits);
    } else if decpt >= nd {
        out.extend_from_slice(digits);
        for _ in 0..decpt - nd {
            out.push(b'0');
        }
        out.extend_from_slice(b".0");
    } else {
        let (int_part, frac) = digits.split_at(decpt as usize);
        out.extend_from_slice(int_part);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let mut v = Vec::new();
        write_python_float(&mut v, x);
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn float_repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (3.5, "3.5"),
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e-100, "1e-100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (1234.5678, "1234.5678"),
            (100.0, "100.0"),
        ];
        for (x, want) in cases {
            assert_eq!(repr(*x), *want, "repr({x:?})");
        }
    }

    #[test]
    fn escaping() {
        let mut v = Vec::new();
        write_escaped(&mut v, "a<b>&c\r\n\t\u{1}\u{FFFE}\u{FFFF}\u{FFFD}é\u{EFFF}");
        assert_eq!(
            String::from_utf8(v).unwrap_or_default(),
            "a&lt;b&gt;&amp;c&#13;\n\t\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}é\u{EFFF}"
        );
    }

    #[test]
    fn ints() {
        for n in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 1 << 40] {
            let mut v = Vec::new();
            write_int(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap_or_default(), n.to_string());
        }
    }
}
