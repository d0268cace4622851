//! Differential test: our `hyperdb` date/interval port against Roundup's own
//! `roundup/date.py`, run through python3 with a frozen "now".
//!
//! Skipped with a message when python3 or the roundup package is unavailable (failed
//! with `RXS_REQUIRE_TOOLS` set).

mod require;

use roundup_xmlrpc::hyperdb::{
    parse_date_filter, parse_interval_filter, parse_timezone, Date, DateRange, Interval, Tz,
};
use std::io::Write;
use std::process::{Command, Stdio};

const PY: &str = r#"
import sys, datetime, calendar
from roundup import date

NOW = [None]
date.Date.now = lambda self: NOW[0]

def h(s): return s.encode('utf-8').hex()
def u(x): return bytes.fromhex(x).decode('utf-8')

def err(e): return 'ERR %s %s' % (type(e).__name__, e)

def sane(d):
    if not (1 <= d.year <= 9999 and 1 <= d.month <= 12): return False
    if not (1 <= d.day <= calendar.monthrange(d.year, d.month)[1]): return False
    return 0 <= d.hour <= 23 and 0 <= d.minute <= 59 and 0 <= d.second < 59.9995

def drepr(d):
    return repr(d) if sane(d) else 'GARBAGE'

def run(op, tz, a, b):
    try:
        if op == 'D':
            return 'OK ' + drepr(date.Date(a, tz))
        if op == 'I':
            i = date.Interval(a)
            return 'OK %r %d' % (i, i.as_seconds())
        if op == 'RD':
            out = []
            try:
                for d in a.split(','):
                    if d == '-':
                        out.append('NULL'); continue
                    r = date.Range(d, date.Date, offset=tz)
                    f = r.from_value
                    t = r.to_value
                    for x in (f, t):
                        if x and not sane(x): return 'GARBAGE'
                    out.append('%s..%s' % (f.serialise() if f else None,
                                           t.serialise() if t else None))
            except ValueError:
                return 'IGNORED'
            return 'OK ' + ','.join(out)
        if op == 'RI':
            try:
                r = date.Range(a, date.Interval)
            except ValueError:
                return 'IGNORED'
            f = r.from_value.as_seconds() if r.from_value else None
            t = r.to_value.as_seconds() if r.to_value else None
            return 'OK %s..%s' % (f, t)
        if op == 'TZ':
            TZ = date.get_timezone(a)
            try:
                TZ.localize(datetime.datetime.now()).utctimetuple()
            except ValueError:
                raise ValueError('Timezone "%s" exceeds valid range [-23...23]' % a)
            off = TZ.utcoffset(None)
            return 'OK %d' % (off.days * 24 + off.seconds // 3600)
        if op == 'ADD':
            d = date.Date(a) + date.Interval(b)
            return 'OK ' + drepr(d)
        if op == 'SUB':
            d = date.Date(a) - date.Interval(b)
            return 'OK ' + drepr(d)
        if op == 'DIFF':
            return 'OK %r' % (date.Date(a) - date.Date(b))
        return 'BADOP'
    except Exception as e:
        return err(e)

for line in sys.stdin:
    op, now_ms, tz, a, b = line.rstrip('\n').split('\t')
    NOW[0] = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=int(now_ms))
    print(h(run(op, u(tz), u(a), u(b))), flush=False)
"#;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

#[derive(Clone)]
struct Case {
    op: &'static str,
    now: Date,
    tz: String,
    a: String,
    b: String,
}

fn tz_of(s: &str) -> Tz {
    Tz::from_roundup_str(s).unwrap_or(Tz::UTC)
}

/// Our answer in the harness's format; `None` = "skip" (documented deviation).
fn ours(c: &Case, python: &str) -> Option<String> {
    let err = |class: &str, msg: String| format!("ERR {class} {msg}");
    Some(match c.op {
        "D" => match Date::parse(&c.a, tz_of(&c.tz), c.now) {
            Ok(d) => format!("OK {}", d.repr()),
            Err(e) => err(e.python_class(), e.to_string()),
        },
        "I" => match Interval::parse(&c.a, c.now) {
            Ok(i) => format!("OK {} {}", i.repr(), i.as_seconds()),
            Err(e) => err(e.python_class(), e.to_string()),
        },
        "RD" => match parse_date_filter(&c.a, tz_of(&c.tz), c.now) {
            None => "IGNORED".to_string(),
            Some(v) => {
                let ser = |d: Option<Date>| d.map_or("None".to_string(), |d| d.serialise());
                let parts: Vec<String> = v
                    .iter()
                    .map(|r| match r {
                        DateRange::Null => "NULL".to_string(),
                        DateRange::Between { from, to } => {
                            format!("{}..{}", ser(*from), ser(*to))
                        }
                    })
                    .collect();
                format!("OK {}", parts.join(","))
            }
        },
        "RI" => match parse_interval_filter(&c.a, c.now) {
            None => "IGNORED".to_string(),
            Some(r) => {
                let s = |v: Option<i64>| v.map_or("None".to_string(), |v| v.to_string());
                format!("OK {}..{}", s(r.from), s(r.to))
            }
        },
        "TZ" => match parse_timezone(&c.a) {
            Ok(t) => format!("OK {}", t.hours()),
            Err(e) => err(e.python_class(), e.to_string()),
        },
        "ADD" | "SUB" => {
            let d = match Date::parse(&c.a, Tz::UTC, c.now) {
                Ok(d) => d,
                Err(e) => return Some(err(e.python_class(), e.to_string())),
            };
            let i = match Interval::parse(&c.b, c.now) {
                Ok(i) => i,
                Err(e) => return Some(err(e.python_class(), e.to_string())),
            };
            let r = if c.op == "ADD" {
                d.add_interval(&i)
            } else {
                d.sub_interval(&i)
            };
            match r {
                Ok(d) => format!("OK {}", d.repr()),
                Err(e) => err(e.python_class(), e.to_string()),
            }
        }
        "DIFF" => {
            let parse = |s: &str| Date::parse(s, Tz::UTC, c.now);
            match (parse(&c.a), parse(&c.b)) {
                (Ok(a), Ok(b)) => format!("OK {}", a.diff(&b).repr()),
                (Err(e), _) | (_, Err(e)) => err(e.python_class(), e.to_string()),
            }
        }
        _ => return None,
    })
    .filter(|_| python != "OK GARBAGE" && python != "GARBAGE")
}

/// Tiny deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

fn nows() -> Vec<Date> {
    [
        (2000, 6, 26, 0, 34, 2, 0),
        (2021, 5, 6, 7, 8, 9, 123),
        (2020, 2, 29, 23, 59, 59, 999),
        (2003, 3, 8, 20, 7, 48, 0),
        (2024, 12, 31, 0, 0, 0, 1),
        (2023, 1, 1, 12, 0, 0, 500),
    ]
    .iter()
    .map(|&(y, m, d, h, mi, s, ms)| Date::from_ymd_hms_milli(y, m, d, h, mi, s, ms).unwrap())
    .collect()
}

const TZS: &[&str] = &["0", "5", "-3", "EST", "HST", "23", "-23", "UTC", "-12", "1"];

const DATE_FIXED: &[&str] = &[
    "2020-01-01",
    "2020-01-01.12:34",
    "2020-01-01T12:34:56",
    "2020-01-01.12:34:56.789",
    "2020/03/04",
    "2020",
    "2020-06",
    "01-25",
    "12:00",
    "2020-01-01.12:34:56+0200",
    "2020-01-01.12:34-0500",
    ".",
    "-1d",
    ". -1d",
    "+1d",
    "1y",
    "-1w 2d",
    "2020-01-01 + 1m",
    "2020-01-01 12:34:56",
    "2020-13-01",
    "2020-01-01;2020-02-01",
    "garbage",
    "",
    " ",
    "20200101123456",
    "20200101123456.5",
    "2020010112345",
    "202001011234567",
    "20200101123456.0625",
    "99991231235959.999",
    "00000101000000",
    "20201301000000",
    "٢٠٢٠-٠١-٠١",
    "2020-01-01\n",
    "12",
    "1-",
    "3-",
    ":30",
    "2000-04-17-0500",
    "01-25-0500",
    "2000-04-17.03:45-0500",
    "08-13.22:13-0500",
    "11-07.09:32:43-0500",
    "14:25-0500",
    "8:47:11-0500",
    "2003 -0500",
    "2003-06 -0500",
    ". + 2d",
    "2000-08-14+0200",
    "08-15.22:47+0200",
    "2020-01-31 + 1m",
    "2020-01-31.12:00:00.5 + 1m",
    "2020-03-31 - 1m",
    "2020-02-29 + 1y",
    "2020-01-01+9999",
    "2020-01-01 +02000",
    "0000-01-01",
    "0001-01-01",
    "0001-01-01.03:00",
    "9999-12-31.23:00",
    "9999-12-31 +1d",
    "0001-01-01 -1d",
    "2020-02-30",
    "2021-02-29",
    "2020-01-01.24:00",
    "2020-01-01.23:60",
    "2020-01-01.23:59:60",
    "2020-01-01.23:59:59.9999",
    "2020-01-01.00:00:00.0005",
    "2020-01-01 2020-01-01",
    "2020-01-01 -1d garbage",
    "2020-01-01 -",
    "it's",
    "a\"b'c",
    "tab\there",
    "-0d",
    "2020-1-1",
    "2020-1",
    "1/2",
    "1/2/3",
    "2020-01-01T",
    "2020-01-01.",
    "T12:00",
    ".12:00",
    "2020-01-01.12:00:00.123456789",
    "2020-01-01 -1d 2:00:03",
    "2020-01-01 - 3w 1d",
    "2020-01-01 +1y 2m 3w 4d 5:06:07",
];

const INTERVAL_FIXED: &[&str] = &[
    "1d",
    "2w",
    "3y 4m 5w 6d 7:08:09",
    "90:00:00",
    "0:04:33",
    "-1d",
    "0:00:00",
    "25:00",
    "1:60",
    "0",
    "00:00",
    "garbage",
    "1dxyz",
    "  3w  1  d  2:00",
    " + 2d",
    "3w",
    "- 3w",
    "2003-03-18",
    "-4d 2003-03-18",
    "03-18",
    "2000-06-26",
    "2000-06-26.00:34",
    "2000-06-26.00:34:02",
    "2020-01-01.12:00",
    "2020-01-01.12:30",
    "+00000001000000",
    "00010203040506",
    "-   10203040506",
    "120200101000000",
    "+ 1y 2m",
    ":30",
    "1d -18",
    "- -",
    "3-",
    "1-2",
    "-1-2",
    "1 y 2 m 3 w 4 d 5:6:7",
    "1d 2:30",
    "- 2:00",
    "1y2m3d",
    "",
    " ",
    "+",
    "-",
    "0d",
    "- 0:00",
    "٣d",
    "1d\n",
    "9999-12-31",
    "0001-01-01",
    "2020-13-01",
    "1y 2020-01-01",
];

const DATE_FILTER_FIXED: &[&str] = &[
    "2020",
    "2020-01",
    "2020-01-15",
    "2020-01-15.12:00",
    "2020-01-15.12:00:30",
    "-1d;",
    ";-1d",
    "2020-01-01;2020-02-01",
    "from 2020-01-01 to 2020-02-01",
    "from 2020-01-01",
    "to 2020-02-01",
    "FROM 2020 TO 2021",
    "-",
    " -",
    "",
    "01-25",
    ".",
    "12:00",
    "garbage",
    "2020;2021;2022",
    "2020-01-01 to",
    "tO +3d",
    "from -1w",
    "; 20:00 +1d",
    "2020-01-01 +1d",
    "2020 -0500",
    "from 2-12 to 4-2",
    "18:00 to +2m",
    "12:00 to",
    "12:00;",
    "2002-11-10; 2002-12-12",
    "from 2003-02-16",
    "2003-02-16;",
    "2003-03-08",
    "-,2020",
    "2020,-",
    "2020,garbage",
    "2020-02",
    "2021-02",
    "2020-12",
    "9999",
    "9999-12-31",
    "2020-01-01.23:59",
    "2020-01-01.23",
    "20200101000000",
    " 2020",
    "2020 ",
    "from  to 2020",
    "from;2020",
    "2020-01-01;;",
    "2020-01-01T10:00",
    "-1d",
    "2020-01-01 + 1m",
    "toto",
    "from",
    "to",
];

const INTERVAL_FILTER_FIXED: &[&str] = &[
    "1:00;2d",
    "from 0:50 to 2:00",
    "from 0:50 to 1d 2:00",
    "from 5:50",
    "to 0:05",
    "1d",
    "-1d",
    "1:30",
    "1:30:15",
    "2w",
    "1y",
    "3m",
    ";",
    "garbage",
    "-",
    "2003-03-18",
    "-2w 1d",
    "from -1w 2d 4:32 to 4d",
    "00010203040506",
    "-0d",
    "- 1:00",
    "1:00,2:00",
    "",
    ";1d",
    "1d;",
    "1d to 2d",
];

const TZ_FIXED: &[&str] = &[
    "0",
    "5",
    "-3",
    "+5",
    " 5 ",
    "1_0",
    "24",
    "-24",
    "99",
    "Europe/Berlin",
    "utc",
    "",
    "UTC",
    "GMT",
    "UCT",
    "EST",
    "MST",
    "HST",
    "5.5",
    "23",
    "-23",
    "24000000000",
    "-24000000025",
    "99999999999",
    "٥",
    "1__0",
    "it's",
];

fn generate() -> Vec<Case> {
    let nows = nows();
    let mut cases = Vec::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let push = |cases: &mut Vec<Case>, op, now, tz: &str, a: String, b: String| {
        cases.push(Case {
            op,
            now,
            tz: tz.to_string(),
            a,
            b,
        })
    };

    for (i, spec) in DATE_FIXED.iter().enumerate() {
        for (j, tz) in ["0", "5", "-3", "EST"].iter().enumerate() {
            let now = nows[(i + j) % nows.len()];
            push(&mut cases, "D", now, tz, spec.to_string(), String::new());
        }
    }
    for (i, spec) in INTERVAL_FIXED.iter().enumerate() {
        for k in 0..2 {
            let now = nows[(i + k * 3) % nows.len()];
            push(&mut cases, "I", now, "0", spec.to_string(), String::new());
        }
    }
    for (i, spec) in DATE_FILTER_FIXED.iter().enumerate() {
        for (j, tz) in ["0", "5", "-3"].iter().enumerate() {
            let now = nows[(i + j) % nows.len()];
            push(&mut cases, "RD", now, tz, spec.to_string(), String::new());
        }
    }
    for (i, spec) in INTERVAL_FILTER_FIXED.iter().enumerate() {
        let now = nows[i % nows.len()];
        push(&mut cases, "RI", now, "0", spec.to_string(), String::new());
    }
    for spec in TZ_FIXED {
        push(
            &mut cases,
            "TZ",
            nows[0],
            "0",
            spec.to_string(),
            String::new(),
        );
    }

    // Random date specs.
    let years = [
        "2020", "1999", "0000", "0001", "9999", "2024", "2100", "1900",
    ];
    let months = ["01", "1", "12", "13", "00", "2", "02", "11"];
    let days = ["01", "1", "28", "29", "30", "31", "32", "00", "15"];
    let seps = ["", ".", "T", " ", ".", "."];
    let times = [
        "12:34",
        "1:02",
        "23:59:59",
        "12:34:56.789",
        "25:00",
        "12:60",
        "00:00:60",
        "9:5",
        ":30",
        "12:34:5.5",
        "0:00:00.0005",
        "00:00",
        "23:59",
        "7:08:09.999",
    ];
    let suffixes = [
        "+0200",
        "-0500",
        " +0130",
        "+9999",
        " + 1m",
        " -1d",
        "+1d",
        " 2w 3d",
        "1y",
        " - 1:00",
        "-1d 2:00:03",
        " + 3m 2d",
        " garbage",
        " -",
        "x",
        " +1y",
        " -25:00",
        "-0000",
        "+1200",
        " - 1m 31d",
    ];
    for n in 0..500 {
        let mut s = String::new();
        match rng.next() % 5 {
            0 => s.push_str(rng.pick(&years)),
            1 => s.push_str(&format!("{}-{}", rng.pick(&years), rng.pick(&months))),
            2 | 3 => s.push_str(&format!(
                "{}{}{}{}{}",
                rng.pick(&years),
                if rng.chance(80) { "-" } else { "/" },
                rng.pick(&months),
                if rng.chance(80) { "-" } else { "/" },
                rng.pick(&days)
            )),
            _ => {
                if rng.chance(50) {
                    s.push_str(&format!("{}-{}", rng.pick(&months), rng.pick(&days)))
                }
            }
        }
        if rng.chance(60) {
            if !s.is_empty() {
                s.push_str(rng.pick(&seps));
            }
            s.push_str(rng.pick(&times));
        }
        if rng.chance(40) {
            s.push_str(rng.pick(&suffixes));
        }
        let tz = rng.pick(TZS);
        let now = nows[n % nows.len()];
        push(&mut cases, "D", now, tz, s, String::new());
    }

    // Random interval specs.
    let parts = [
        "1y", "2m", "3w", "4d", "1 y", "10 d", "25:00", "1:60", "0:04:33", "1:02:03", "90:00:00",
        ":30", "0:00", "7:08", "12m", "400d",
    ];
    let signs = ["", "+", "-", "- ", " + ", "  "];
    let datesuffix = [
        "2020-01-01",
        "03-18",
        "2000-06-26",
        "2021-05-06.07:08",
        "2003-03-18.12:30",
        "2024-12-31",
        "2020-02-29.23:59:59",
    ];
    for n in 0..400 {
        let mut s = rng.pick(&signs).to_string();
        let k = rng.next() % 4;
        let mut chosen: Vec<&str> = (0..k).map(|_| rng.pick(&parts)).collect();
        chosen.sort_by_key(|p| {
            if p.contains(':') {
                9
            } else {
                "ymwd".find(p.chars().last().unwrap_or('d')).unwrap_or(5)
            }
        });
        s.push_str(&chosen.join(" "));
        if rng.chance(30) {
            s.push(' ');
            s.push_str(rng.pick(&datesuffix));
        }
        let now = nows[n % nows.len()];
        push(&mut cases, "I", now, "0", s.clone(), String::new());
        if rng.chance(40) {
            push(&mut cases, "RI", now, "0", s, String::new());
        }
    }

    // Random date filters.
    let pieces = [
        "2020",
        "2020-01",
        "2020-01-15",
        "2020-01-15.12:00",
        "-1d;",
        ";-1d",
        "2020-01-01;2020-02-01",
        "from 2020-01-01 to 2020-02-01",
        "from 2020-01-01",
        "to 2020-02-01",
        "-",
        "2020-02",
        "2019-02",
        "12:00",
        "2020-01-15.23:00",
        "2020-12-31",
        "from -2w to -1w",
        "2020-06-15 -0500",
    ];
    for n in 0..200 {
        let k = 1 + rng.next() % 3;
        let s: Vec<&str> = (0..k).map(|_| rng.pick(&pieces)).collect();
        let tz = rng.pick(TZS);
        let now = nows[n % nows.len()];
        push(&mut cases, "RD", now, tz, s.join(","), String::new());
    }

    // Random strings over the alphabet the patterns care about (digit runs kept short
    // so that Roundup's overflow loops stay fast).
    let alphabet: Vec<char> = "0123456789-/.T: +ymwdfromtFROMTO;,\n".chars().collect();
    for n in 0..1200 {
        let len = (rng.next() % 16) as usize;
        let mut s = String::new();
        let mut run = 0;
        while s.chars().count() < len {
            let c = alphabet[(rng.next() % alphabet.len() as u64) as usize];
            if c.is_ascii_digit() {
                run += 1;
                if run > 4 {
                    continue;
                }
            } else {
                run = 0;
            }
            s.push(c);
        }
        let op = ["D", "I", "RD", "RI"][n % 4];
        let tz = rng.pick(TZS);
        push(&mut cases, op, nows[n % nows.len()], tz, s, String::new());
    }

    // Arithmetic.
    let adates = [
        "2020-01-31",
        "2020-02-29",
        "2020-03-31",
        "2019-12-31.23:59:59",
        "2020-01-01.10:00:00.500",
        "0001-01-01",
        "9999-12-31",
        "2000-06-26.00:34:02",
        "2004-04-06.22:04:20",
        "2003-07-01",
    ];
    let aivs = [
        "1m",
        "1y",
        "1d",
        "- 1d",
        "0:00:01",
        "25:00",
        "1m 31d",
        "13m",
        "- 13m",
        "400d",
        "3w",
        "- 1y 1m 1d 1:01:01",
        "00:00",
        "1:60",
        "280d 22:04:20",
        "99y",
    ];
    for (i, a) in adates.iter().enumerate() {
        for (j, b) in aivs.iter().enumerate() {
            let now = nows[(i + j) % nows.len()];
            let op = if (i + j) % 2 == 0 { "ADD" } else { "SUB" };
            push(&mut cases, op, now, "0", a.to_string(), b.to_string());
        }
        for b in adates.iter() {
            push(
                &mut cases,
                "DIFF",
                nows[i % nows.len()],
                "0",
                a.to_string(),
                b.to_string(),
            );
        }
        push(
            &mut cases,
            "DIFF",
            nows[1],
            "0",
            ".".to_string(),
            a.to_string(),
        );
        push(
            &mut cases,
            "DIFF",
            nows[2],
            "0",
            a.to_string(),
            ".".to_string(),
        );
    }
    cases
}

fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import roundup.date"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn matches_roundup_date_py() {
    if !python_available() {
        require::missing("python3 with the roundup package");
        return;
    }
    let cases = generate();
    let mut input = String::new();
    for c in &cases {
        input.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            c.op,
            c.now.unix_millis(),
            hex(&c.tz),
            hex(&c.a),
            hex(&c.b)
        ));
    }
    let mut child = Command::new("python3")
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 output");
    writer.join().expect("writer").expect("write");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(unhex)
        .collect();
    assert_eq!(lines.len(), cases.len());

    let mut failures = Vec::new();
    let mut compared = 0;
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for (c, py) in cases.iter().zip(&lines) {
        let Some(mine) = ours(c, py) else {
            if std::env::var_os("HYPERDB_DIFF_VERBOSE").is_some() {
                println!(
                    "SKIPPED {} {:?} {:?} tz={:?} => {}",
                    c.op, c.a, c.b, c.tz, py
                );
            }
            continue;
        };
        compared += 1;
        let kind = py.split(' ').next().unwrap_or("");
        *kinds.entry(format!("{}/{}", c.op, kind)).or_default() += 1;
        if std::env::var_os("HYPERDB_DIFF_VERBOSE").is_some() {
            println!("{} {:?} {:?} tz={:?} => {}", c.op, c.a, c.b, c.tz, py);
        }
        if &mine != py {
            failures.push(format!(
                "{} now={} tz={:?} a={:?} b={:?}\n   python: {}\n   ours:   {}",
                c.op,
                c.now.repr(),
                c.tz,
                c.a,
                c.b,
                py,
                mine
            ));
        }
    }
    println!("compared {compared} of {} cases: {kinds:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
