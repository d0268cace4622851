//! Table tests for `hyperdb` dates, intervals, time zones and filter ranges: every
//! example of the reference (§2.3, §3.4, §3.5, §4.3, §7.4, §8.3) plus the doctests of
//! Roundup's `roundup/date.py` and robustness cases (huge numbers must not panic).

use roundup_xmlrpc::hyperdb::{
    parse_date_filter, parse_date_range, parse_interval_filter, parse_interval_range,
    parse_timezone, Date, DateError, DateRange, Interval, IntervalError, IntervalRange, Tz,
};

fn at(y: i64, m: i64, d: i64, h: i64, mi: i64, s: i64, ms: i64) -> Date {
    Date::from_ymd_hms_milli(y, m, d, h, mi, s, ms).expect("valid date")
}

fn tz(s: &str) -> Tz {
    Tz::from_roundup_str(s).expect("valid tz")
}

/// `Date(spec, tz)` with a frozen now, as `repr()` or the error text.
fn date(spec: &str, zone: &str, now: Date) -> String {
    match Date::parse(spec, tz(zone), now) {
        Ok(d) => d.repr(),
        Err(e) => format!("ERR {e}"),
    }
}

fn interval(spec: &str, now: Date) -> String {
    match Interval::parse(spec, now) {
        Ok(i) => i.repr(),
        Err(e) => format!("ERR {e}"),
    }
}

const NOW: (i64, i64, i64, i64, i64, i64, i64) = (2021, 5, 6, 7, 8, 9, 123);

fn now() -> Date {
    let (y, m, d, h, mi, s, ms) = NOW;
    at(y, m, d, h, mi, s, ms)
}

#[test]
fn reference_3_4_date_inputs() {
    let n = now();
    let cases = [
        ("2020-01-01", "0", "<Date 2020-01-01.00:00:00.000>"),
        ("2020-01-01.12:34", "0", "<Date 2020-01-01.12:34:00.000>"),
        ("2020-01-01T12:34:56", "0", "<Date 2020-01-01.12:34:56.000>"),
        (
            "2020-01-01.12:34:56.789",
            "0",
            "<Date 2020-01-01.12:34:56.789>",
        ),
        ("2020/03/04", "0", "<Date 2020-03-04.00:00:00.000>"),
        ("2020", "0", "<Date 2020-01-01.00:00:00.000>"),
        ("2020-06", "0", "<Date 2020-06-01.00:00:00.000>"),
        ("01-25", "0", "<Date 2021-01-25.00:00:00.000>"),
        ("12:00", "0", "<Date 2021-05-06.12:00:00.000>"),
        (
            "2020-01-01.12:34:56+0200",
            "0",
            "<Date 2020-01-01.10:34:56.000>",
        ),
        (
            "2020-01-01.12:34:56+0200",
            "5",
            "<Date 2020-01-01.10:34:56.000>",
        ),
        (
            "2020-01-01.12:34-0500",
            "0",
            "<Date 2020-01-01.17:34:00.000>",
        ),
        (".", "0", "<Date 2021-05-06.07:08:09.123>"),
        (".", "5", "<Date 2021-05-06.07:08:09.123>"),
        ("-1d", "0", "<Date 2021-05-05.07:08:09.000>"),
        (". -1d", "0", "<Date 2021-05-05.07:08:09.000>"),
        ("+1d", "0", "<Date 2021-05-07.07:08:09.000>"),
        ("1y", "0", "<Date 2022-05-06.07:08:09.000>"),
        ("-1w 2d", "0", "<Date 2021-04-27.07:08:09.000>"),
        ("2020-01-01 + 1m", "0", "<Date 2020-02-01.00:00:00.000>"),
        ("2020-01-01.12:00", "5", "<Date 2020-01-01.07:00:00.000>"),
        ("20200101123456", "5", "<Date 2020-01-01.12:34:56.000>"),
        ("20200101123456.5", "0", "<Date 2020-01-01.12:34:56.500>"),
        ("20261129013407.747", "0", "<Date 2026-11-29.01:34:07.747>"),
        ("2020-01-01", "EST", "<Date 2019-12-31.19:00:00.000>"),
        ("2020-01-01", "HST", "<Date 2019-12-31.14:00:00.000>"),
        ("2020-01-01", "MST", "<Date 2019-12-31.17:00:00.000>"),
        ("2020-01-01", "-3", "<Date 2020-01-01.03:00:00.000>"),
        ("2020-01-31 + 1m", "0", "<Date 2020-03-02.00:00:00.000>"),
        ("2020-03-31 - 1m", "0", "<Date 2020-03-02.00:00:00.000>"),
        ("2020-02-29 + 1y", "0", "<Date 2021-03-01.00:00:00.000>"),
        (
            "2020-01-01.12:34:56.789+0200",
            "0",
            "<Date 2020-01-01.10:34:56.000>",
        ),
    ];
    for (spec, zone, want) in cases {
        assert_eq!(date(spec, zone, n), want, "spec {spec:?} tz {zone}");
    }
}

#[test]
fn reference_3_4_date_errors() {
    let n = now();
    let not_a_date = |s: &str| {
        format!(
            "ERR Not a date spec: {s} (\"yyyy-mm-dd\", \"mm-dd\", \"HH:MM\", \"HH:MM:SS\" or \"yyyy-mm-dd.HH:MM:SS.SSS\")"
        )
    };
    assert_eq!(date("garbage", "0", n), not_a_date("'garbage'"));
    assert_eq!(
        date("2020-01-01 12:34:56", "0", n),
        not_a_date("'2020-01-01 12:34:56'")
    );
    assert_eq!(
        date("2020-01-01;2020-02-01", "0", n),
        not_a_date("'2020-01-01;2020-02-01'")
    );
    assert_eq!(date("it's", "0", n), not_a_date("\"it's\""));
    assert_eq!(date("2020-13-01", "0", n), "ERR month must be in 1..12");
    assert_eq!(
        date("2021-02-29", "0", n),
        "ERR day is out of range for month"
    );
    assert_eq!(
        date("2020-01-01.24:00", "0", n),
        "ERR hour must be in 0..23"
    );
    assert_eq!(
        date("2020-01-01.23:60", "0", n),
        "ERR minute must be in 0..59"
    );
    assert_eq!(
        date("2020-01-01.23:59:60", "0", n),
        "ERR second must be in 0..59"
    );
    assert_eq!(date("0000-01-01", "0", n), "ERR year 0 is out of range");
    assert_eq!(
        date("2020-01-01 -1d garbage", "0", n),
        "ERR Not a date spec: '2020-01-01 -1d garbage' (\"yyyy-mm-dd\", \"mm-dd\", \"HH:MM\", \"HH:MM:SS\" or \"yyyy-mm-dd.HH:MM:SS.SSS\")"
    );
    assert_eq!(
        date("2020-01-01 -", "0", n),
        "ERR '2020-01-01 -' not a date / time spec \"yyyy-mm-dd\", \"mm-dd\", \"HH:MM\", \"HH:MM:SS\" or \"yyyy-mm-dd.HH:MM:SS.SSS\""
    );
    // Local → UTC leaving the datetime range is Python's OverflowError.
    let e = Date::parse("0001-01-01.03:00", tz("5"), n).unwrap_err();
    assert_eq!(e, DateError::Overflow);
    assert_eq!(e.to_string(), "date value out of range");
    assert_eq!(e.python_class(), "OverflowError");
    // A configured offset of 24h or more fails on use.
    let e = Date::parse("2020-01-01", Tz::from_hours(24), n).unwrap_err();
    assert_eq!(e.python_class(), "ValueError");
    assert_eq!(
        e.to_string(),
        "offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)."
    );
    // ... but not when no conversion happens (".", relative specs, serialised form).
    assert!(Date::parse(".", Tz::from_hours(24), n).is_ok());
}

#[test]
fn date_py_doctests() {
    let n = at(2000, 6, 26, 0, 34, 2, 0);
    let cases = [
        ("2000-04-17-0500", "0", "<Date 2000-04-17.05:00:00.000>"),
        ("01-25-0500", "0", "<Date 2000-01-25.05:00:00.000>"),
        (
            "2000-04-17.03:45-0500",
            "0",
            "<Date 2000-04-17.08:45:00.000>",
        ),
        ("08-13.22:13-0500", "0", "<Date 2000-08-14.03:13:00.000>"),
        ("11-07.09:32:43-0500", "0", "<Date 2000-11-07.14:32:43.000>"),
        ("14:25-0500", "0", "<Date 2000-06-26.19:25:00.000>"),
        ("8:47:11-0500", "0", "<Date 2000-06-26.13:47:11.000>"),
        ("2003 -0500", "0", "<Date 2003-01-01.05:00:00.000>"),
        ("2003-06 -0500", "0", "<Date 2003-06-01.05:00:00.000>"),
        (".", "0", "<Date 2000-06-26.00:34:02.000>"),
        (". + 2d", "0", "<Date 2000-06-28.00:34:02.000>"),
        ("1997-04-17", "-5", "<Date 1997-04-17.05:00:00.000>"),
        ("01-25", "-5", "<Date 2000-01-25.05:00:00.000>"),
        ("08-13.22:13", "-5", "<Date 2000-08-14.03:13:00.000>"),
        ("14:25", "-5", "<Date 2000-06-26.19:25:00.000>"),
        ("2000-08-14+0200", "0", "<Date 2000-08-13.22:00:00.000>"),
        ("08-15.22:00+0200", "0", "<Date 2000-08-15.20:00:00.000>"),
        ("08-15.22:47+0200", "5", "<Date 2000-08-15.20:47:00.000>"),
        ("08-15.22:47", "5", "<Date 2000-08-15.17:47:00.000>"),
    ];
    for (spec, zone, want) in cases {
        assert_eq!(date(spec, zone, n), want, "spec {spec:?} tz {zone}");
    }
    assert_eq!(interval("  3w  1  d  2:00", n), "<Interval + 22d 2:00>");
    let d = Date::parse(". + 2d", Tz::UTC, n).unwrap();
    let i = Interval::parse("- 3w", n).unwrap();
    assert_eq!(
        d.add_interval(&i).unwrap().repr(),
        "<Date 2000-06-07.00:34:02.000>"
    );
    assert_eq!(interval("2003-03-18", n), "<Interval - 995d>");
    assert_eq!(interval("-4d 2003-03-18", n), "<Interval - 991d>");

    let n2 = at(2004, 4, 6, 22, 4, 20, 767);
    let d1 = Date::parse(".", Tz::UTC, n2).unwrap();
    assert_eq!(d1.repr(), "<Date 2004-04-06.22:04:20.767>");
    let d2 = Date::parse("2003-07-01", Tz::UTC, n2).unwrap();
    let i1 = d1.diff(&d2);
    assert_eq!(i1.repr(), "<Interval + 280d 22:04:20>");
    assert_eq!(
        d2.add_interval(&i1).unwrap().repr(),
        "<Date 2004-04-06.22:04:20.000>"
    );
    assert_eq!(
        d1.sub_interval(&i1).unwrap().repr(),
        "<Date 2003-07-01.00:00:00.000>"
    );
    assert_eq!(d2.diff(&d2).repr(), "<Interval 00:00>");
}

#[test]
fn reference_3_5_intervals() {
    let n = now();
    let cases = [
        ("1d", "+ 1d", 86_400),
        ("2w", "+ 14d", 1_209_600),
        ("3y 4m 5w 6d 7:08:09", "+ 3y 4m 41d 7:08:09", 108_544_089),
        ("90:00:00", "+ 90:00", 324_000),
        ("0:04:33", "+ 0:04:33", 273),
        ("-1d", "- 1d", -86_400),
        ("0:00:00", "00:00", 0),
        ("25:00", "+ 25:00", 90_000),
        ("1:60", "+ 1:60", 7_200),
        ("1d 2:30", "+ 1d 2:30", 95_400),
        ("- 2:00", "- 2:00", -7_200),
        ("+ 1y 2m", "+ 1y 2m", 36_720_000),
        ("+00000001000000", "+ 1d", 86_400),
        ("-00010203040506", "- 1y 2m 3d 4:05:06", -36_993_906),
        ("1dxyz", "+ 1d", 86_400),
    ];
    for (spec, want, secs) in cases {
        let i = Interval::parse(spec, n).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(i.to_string(), want, "spec {spec:?}");
        assert_eq!(i.repr(), format!("<Interval {want}>"));
        assert_eq!(i.as_seconds(), secs, "spec {spec:?}");
        let back = Interval::from_stored(&i.to_string()).expect("stored form parses");
        assert_eq!(back.to_string(), want);
    }
    for bad in ["0", "garbage", "", "-", "+"] {
        assert_eq!(
            interval(bad, n),
            format!(
                "ERR Not an interval spec: \"{bad}\" ([+-] [#y] [#m] [#w] [#d] [[[H]H:MM]:SS])"
            )
        );
    }
    assert_eq!(
        Interval::parse("1d", n).unwrap().serialise(),
        "+00000001000000"
    );
    assert_eq!(Interval::from_seconds(-95_400).to_string(), "- 1d 2:30");
    assert_eq!(Interval::from_stored("garbage"), None);
    // Comparison is by seconds, as in Python.
    assert_eq!(
        Interval::parse("25:00", n).unwrap(),
        Interval::parse("1d 1:00", n).unwrap()
    );
    assert!(Interval::parse("1:00", n).unwrap() < Interval::parse("61:00", n).unwrap());
}

#[test]
fn reference_2_3_and_8_3_storage_forms() {
    let d = at(2021, 5, 6, 7, 8, 9, 0);
    assert_eq!(d.repr(), "<Date 2021-05-06.07:08:09.000>");
    assert_eq!(d.to_string(), "2021-05-06.07:08:09");
    let d = Date::from_serialised("20261129013407.747").unwrap();
    assert_eq!(d.serialise(), "20261129013407.747");
    assert_eq!(d.to_string(), "2026-11-29.01:34:07");
    assert_eq!(d.serialise().len(), 18);
    assert_eq!(
        Date::from_serialised("20200101000000").unwrap().serialise(),
        "20200101000000.000"
    );
    assert_eq!(Date::from_serialised("2020-01-01"), None);
    assert_eq!(Date::from_serialised("20201301000000"), None);
    assert_eq!(at(1, 1, 1, 0, 0, 0, 0).serialise(), "00010101000000.000");
    assert_eq!(
        at(9999, 12, 31, 23, 59, 59, 999).serialise(),
        "99991231235959.999"
    );
    // Ordering of dates is chronological and matches the serialised text order.
    let a = at(2020, 1, 1, 0, 0, 0, 1);
    let b = at(2020, 1, 1, 0, 0, 1, 0);
    assert!(a < b && a.serialise() < b.serialise());
    let i = Interval::parse("1d 2:30", now()).unwrap();
    assert_eq!(
        (i.to_string(), i.as_seconds()),
        ("+ 1d 2:30".to_string(), 95_400)
    );
    assert_eq!(
        Interval::parse("00:00", now()).unwrap().repr(),
        "<Interval 00:00>"
    );
}

#[test]
fn reference_7_4_timezones() {
    let e = parse_timezone("Europe/Berlin").unwrap_err();
    assert_eq!(
        format!("<class '{}'>:{}", e.python_class(), e),
        "<class 'KeyError'>:'Europe/Berlin'"
    );
    let e = parse_timezone("99").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Timezone \"99\" exceeds valid range [-23...23]"
    );
    assert_eq!(e.python_class(), "ValueError");
    assert_eq!(parse_timezone("-23").unwrap().hours(), -23);
    assert!(parse_timezone("24").is_err());
    assert_eq!(parse_timezone("EST").unwrap().hours(), 5);
    assert_eq!(parse_timezone("GMT").unwrap(), Tz::UTC);
    assert_eq!(parse_timezone("UCT").unwrap(), Tz::UTC);
    // get_timezone itself does not range-check (config values like "24" are accepted).
    assert_eq!(Tz::from_roundup_str("24").unwrap().hours(), 24);
    assert!(Tz::from_roundup_str("5.5").is_err());
}

fn ser(d: Option<Date>) -> String {
    d.map_or("None".into(), |d| d.serialise())
}

fn filter(spec: &str, zone: &str, n: Date) -> Option<Vec<String>> {
    parse_date_filter(spec, tz(zone), n).map(|v| {
        v.into_iter()
            .map(|r| match r {
                DateRange::Null => "NULL".to_string(),
                DateRange::Between { from, to } => format!("{}..{}", ser(from), ser(to)),
            })
            .collect()
    })
}

#[test]
fn reference_4_3_date_filters() {
    let n = now();
    let one = |spec: &str, zone: &str| filter(spec, zone, n).map(|v| v.join(","));
    let cases = [
        ("2020", "0", "20200101000000.000..20201231235959.000"),
        ("2020-01", "0", "20200101000000.000..20200131235959.000"),
        ("2020-02", "0", "20200201000000.000..20200229235959.000"),
        ("2020-01-15", "0", "20200115000000.000..20200115235959.000"),
        (
            "2020-01-15.12:00",
            "0",
            "20200115120000.000..20200115120059.000",
        ),
        (
            "2020-01-15.12:00",
            "5",
            "20200115070000.000..20200115070059.000",
        ),
        ("-1d;", "0", "20210505070809.000..None"),
        (";2020-02-01", "0", "None..20200201000000.000"),
        (
            "2020-01-01;2020-02-01",
            "0",
            "20200101000000.000..20200201000000.000",
        ),
        (
            "from 2020-01-01 to 2020-02-01",
            "0",
            "20200101000000.000..20200201000000.000",
        ),
        (
            "FROM 2020-01-01 tO 2020-02-01",
            "0",
            "20200101000000.000..20200201000000.000",
        ),
        ("from 2020-01-01", "0", "20200101000000.000..None"),
        ("to 2020-02-01", "0", "None..20200201000000.000"),
        ("-", "0", "NULL"),
        ("-,2020", "0", "NULL,20200101000000.000..20201231235959.000"),
        (";", "0", "None..None"),
    ];
    for (spec, zone, want) in cases {
        assert_eq!(one(spec, zone).as_deref(), Some(want), "spec {spec:?}");
    }
    // Unparsable pieces drop the whole filter (Roundup: "no restriction").
    for spec in [
        "garbage",
        "2020,garbage",
        "",
        "01-25",
        ".",
        "-1d",
        "2020-01-15.12:00:30",
        " -",
    ] {
        assert_eq!(one(spec, "0"), None, "spec {spec:?}");
    }
    // Range() doctests.
    let n = at(2003, 3, 8, 20, 7, 48, 0);
    let r = |spec: &str| match parse_date_range(spec, Tz::UTC, n).unwrap() {
        DateRange::Between { from, to } => format!(
            "from {} to {}",
            from.map_or("None".into(), |d| d.to_string()),
            to.map_or("None".into(), |d| d.to_string())
        ),
        DateRange::Null => "NULL".into(),
    };
    assert_eq!(
        r("from 2-12 to 4-2"),
        "from 2003-02-12.00:00:00 to 2003-04-02.00:00:00"
    );
    assert_eq!(
        r("18:00 to +2m"),
        "from 2003-03-08.18:00:00 to 2003-05-08.20:07:48"
    );
    assert_eq!(r("tO +3d"), "from None to 2003-03-11.20:07:48");
    assert_eq!(r("12:00 to"), "from 2003-03-08.12:00:00 to None");
    assert_eq!(r("12:00;"), "from 2003-03-08.12:00:00 to None");
    assert_eq!(
        r("2002-11-10; 2002-12-12"),
        "from 2002-11-10.00:00:00 to 2002-12-12.00:00:00"
    );
    assert_eq!(r("; 20:00 +1d"), "from None to 2003-03-09.20:00:00");
    assert_eq!(r("from 2003-02-16"), "from 2003-02-16.00:00:00 to None");
    assert_eq!(r("2003-02-16;"), "from 2003-02-16.00:00:00 to None");
    assert_eq!(
        r("12:00"),
        "from 2003-03-08.12:00:00 to 2003-03-08.12:00:59"
    );
    assert_eq!(
        r("2003-03-08"),
        "from 2003-03-08.00:00:00 to 2003-03-08.23:59:59"
    );
}

#[test]
fn reference_4_3_interval_filters() {
    let n = now();
    let r = |spec: &str| parse_interval_filter(spec, n);
    let b = |from: Option<i64>, to: Option<i64>| Some(IntervalRange { from, to });
    assert_eq!(r("1:00;2d"), b(Some(3600), Some(172_800)));
    assert_eq!(r("from 0:50 to 2:00"), b(Some(3000), Some(7200)));
    assert_eq!(r("from 0:50 to 1d 2:00"), b(Some(3000), Some(93_600)));
    assert_eq!(r("from 5:50"), b(Some(21_000), None));
    assert_eq!(r("to 0:05"), b(None, Some(300)));
    assert_eq!(r("1d"), b(Some(86_400), Some(172_800)));
    assert_eq!(r("-1d"), b(Some(-86_400), Some(0)));
    assert_eq!(r("1:30"), b(Some(5400), Some(5460)));
    assert_eq!(r(";"), b(None, None));
    assert_eq!(r("garbage"), None);
    assert_eq!(r("-"), None);
    assert_eq!(
        parse_interval_range("2w", n).unwrap(),
        IntervalRange {
            from: Some(1_209_600),
            to: Some(1_814_400)
        }
    );
}

#[test]
fn huge_numbers_error_cleanly() {
    let n = now();
    for spec in [
        "99999999999y",
        "-99999999999y",
        "99999999999m",
        "99999999999d",
        "-99999999999d",
        "2020-01-01 + 99999999999m",
        "2020-01-01 + 99999999999999999999999999d",
        ". + 9223372036854775807:00",
        "+99999999999999999999w",
    ] {
        let r = Date::parse(spec, Tz::UTC, n);
        assert!(r.is_err(), "{spec:?} gave {r:?}");
    }
    // "9999" is taken as the year, "9999999y" as the interval (as in Roundup).
    assert_eq!(
        Date::parse("99999999999y", Tz::UTC, n)
            .unwrap_err()
            .to_string(),
        "year 10009998 is out of range"
    );
    assert_eq!(
        Date::parse(". +99999999999y", Tz::UTC, n)
            .unwrap_err()
            .to_string(),
        "year 100000002020 is out of range"
    );
    // Roundup accepts this interval (and cannot store it); the seconds fit an i64 here.
    assert_eq!(
        Interval::parse("99999999999y", n).unwrap().to_string(),
        "+ 99999999999y"
    );
    for spec in [
        "999999999999y",
        "+ 99999999999999999999d",
        "+ 9223372036854775807:00",
        "1:9223372036854775807",
    ] {
        let e = Interval::parse(spec, n).unwrap_err();
        assert_eq!(e, IntervalError::TooLarge, "{spec:?}");
    }
    assert!(Interval::parse("0:0:9223372036854775807", n).is_ok());
    assert!(parse_interval_filter("+ 99999999999999999999d", n).is_none());
    assert!(parse_date_filter("99999999999999999999;", Tz::UTC, n).is_none());
    let big = Interval::parse("99999999999y", n).unwrap();
    assert!(now().add_interval(&big).is_err());
    assert!(now().sub_interval(&big).is_err());
    assert!(Tz::from_roundup_str("99999999999999999999999999").is_ok());
    assert!(Date::parse("2020-01-01", tz("99999999999999999999999999"), n).is_err());
    assert_eq!(Date::from_unix_millis(i64::MAX), None);
    assert_eq!(Date::from_unix_millis(i64::MIN), None);
    let long = "1".repeat(100_000);
    // Long inputs must not panic (they parse as serialised forms).
    assert!(Date::parse(&long, Tz::UTC, n).is_ok());
    assert!(Interval::parse(&long, n).is_ok());
    assert!(Interval::parse(&format!("+ {}", "9".repeat(100_000)), n).is_err());
    assert!(parse_date_filter(&"1;".repeat(10_000), Tz::UTC, n).is_none());
}

#[test]
fn date_arithmetic() {
    let d = at(2020, 1, 31, 10, 0, 0, 500);
    let m = Interval::parse("1m", now()).unwrap();
    assert_eq!(
        d.add_interval(&m).unwrap().repr(),
        "<Date 2020-03-02.10:00:00.000>"
    );
    assert_eq!(
        d.sub_interval(&m).unwrap().repr(),
        "<Date 2019-12-31.10:00:00.000>"
    );
    let e = at(9999, 12, 31, 0, 0, 0, 0)
        .add_interval(&Interval::parse("1d", now()).unwrap())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unknown spec (10000, 1, 1, 0, 0, 0, 0, 0, 0)"
    );
    let now_ = Date::now();
    assert!(now_ > at(2020, 1, 1, 0, 0, 0, 0));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// No client string may panic any parser, whatever its numbers.
    #[test]
    fn parsers_never_panic(
        spec in "[0-9 +\\-:.;,/TdmywfromtFROMTO\\n]{0,40}|\\PC{0,20}",
        hours in proptest::prelude::any::<i64>(),
    ) {
        let n = now();
        let zone = Tz::from_hours(hours % 30);
        if let Ok(d) = Date::parse(&spec, zone, n) {
            proptest::prop_assert_eq!(Date::from_serialised(&d.serialise()), Some(d));
            if let Ok(i) = Interval::parse(&spec, n) {
                let _ = d.add_interval(&i);
                let _ = d.sub_interval(&i);
            }
        }
        if let Ok(i) = Interval::parse(&spec, n) {
            let stored = Interval::from_stored(&i.to_string());
            proptest::prop_assert_eq!(stored.map(|s| s.as_seconds()), Some(i.as_seconds()));
        }
        let _ = parse_date_filter(&spec, zone, n);
        let _ = parse_interval_filter(&spec, n);
        let _ = parse_timezone(&spec);
        let _ = Date::parse(&spec, Tz::from_hours(hours), n);
    }
}
