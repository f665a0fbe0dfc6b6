use std::cell::RefCell;
use std::rc::Rc;

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
}

fn schedule(expr: &str, tz: &str) -> CronSchedule {
    CronSchedule::parse(expr, tz).unwrap_or_else(|e| panic!("{e}"))
}

/// The first `n` fire instants after `after`, as RFC 3339 UTC strings.
fn fires(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    schedule(expr, tz)
        .iter_after(ts(after))
        .take(n)
        .map(|t| t.to_string())
        .collect()
}

fn spec(expr: &str) -> Spec {
    match CronSchedule::parse(expr, "UTC")
        .unwrap_or_else(|e| panic!("{e}"))
        .kind
    {
        Kind::Cron(spec) => spec,
        Kind::Every { .. } => panic!("{expr} is not a cron expression"),
    }
}

fn bits(values: &[u8]) -> u64 {
    values.iter().fold(0, |acc, v| acc | 1 << v)
}

fn range_bits(lo: u8, hi: u8) -> u64 {
    (lo..=hi).fold(0, |acc, v| acc | 1 << v)
}

fn error(expr: &str) -> CronError {
    match CronSchedule::parse(expr, "UTC") {
        Ok(_) => panic!("{expr:?} parsed, expected an error"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn five_field_forms() {
    let s = spec("* * * * *");
    assert_eq!(s.seconds, bits(&[0]));
    assert_eq!(s.minutes, range_bits(0, 59));
    assert_eq!(s.hours, range_bits(0, 23));
    assert_eq!(s.days_of_month, range_bits(1, 31));
    assert_eq!(s.months, range_bits(1, 12));
    assert_eq!(s.days_of_week, range_bits(0, 6));

    assert_eq!(spec("5 * * * *").minutes, bits(&[5]));
    assert_eq!(spec("05 * * * *").minutes, bits(&[5]));
    assert_eq!(spec("1-3 * * * *").minutes, bits(&[1, 2, 3]));
    assert_eq!(spec("7-7 * * * *").minutes, bits(&[7]));
    assert_eq!(spec("*/15 * * * *").minutes, bits(&[0, 15, 30, 45]));
    assert_eq!(spec("10-50/20 * * * *").minutes, bits(&[10, 30, 50]));
    assert_eq!(spec("10-55/20 * * * *").minutes, bits(&[10, 30, 50]));
    assert_eq!(spec("5/20 * * * *").minutes, bits(&[5, 25, 45]));
    assert_eq!(
        spec("1,2,10-12,*/30 * * * *").minutes,
        bits(&[0, 1, 2, 10, 11, 12, 30])
    );
    assert_eq!(spec("*/60 * * * *").minutes, bits(&[0]));
    assert_eq!(spec("0 */5 * * *").hours, bits(&[0, 5, 10, 15, 20]));
    assert_eq!(spec("0 0 */10 * *").days_of_month, bits(&[1, 11, 21, 31]));
    assert_eq!(spec("0 0 31 * *").days_of_month, bits(&[31]));
    assert_eq!(spec("0 0 * */3 *").months, bits(&[1, 4, 7, 10]));
    assert_eq!(spec("0 0 * 2/5 *").months, bits(&[2, 7, 12]));
}

#[test]
fn names_are_case_insensitive() {
    assert_eq!(spec("0 0 * JAN-MAR *").months, bits(&[1, 2, 3]));
    assert_eq!(spec("0 0 * jan,Jun,dEc *").months, bits(&[1, 6, 12]));
    assert_eq!(spec("0 0 * JAN-DEC/4 *").months, bits(&[1, 5, 9]));
    assert_eq!(spec("0 0 * * MON-FRI").days_of_week, bits(&[1, 2, 3, 4, 5]));
    assert_eq!(spec("0 0 * * sun,Sat").days_of_week, bits(&[0, 6]));
    assert_eq!(spec("0 0 * * tue-THU").days_of_week, bits(&[2, 3, 4]));
    assert_eq!(spec("0 0 * FEB-4 *").months, bits(&[2, 3, 4]));
}

#[test]
fn day_of_week_seven_is_sunday() {
    assert_eq!(spec("0 0 * * 7").days_of_week, bits(&[0]));
    assert_eq!(spec("0 0 * * 0").days_of_week, bits(&[0]));
    assert_eq!(spec("0 0 * * 5-7").days_of_week, bits(&[0, 5, 6]));
    assert_eq!(spec("0 0 * * 0-7").days_of_week, range_bits(0, 6));
    assert_eq!(spec("0 0 * * FRI-7").days_of_week, bits(&[0, 5, 6]));
    // `*` and `a/n` end at Saturday.
    assert_eq!(spec("0 0 * * */2").days_of_week, bits(&[0, 2, 4, 6]));
    assert_eq!(spec("0 0 * * */7").days_of_week, bits(&[0]));
    assert_eq!(spec("0 0 * * 1/2").days_of_week, bits(&[1, 3, 5]));
    assert_eq!(spec("0 0 * * 7/3").days_of_week, bits(&[0]));
    assert_eq!(spec("0 0 * * 1-7/2").days_of_week, bits(&[0, 1, 3, 5]));
}

#[test]
fn question_mark_is_star_in_day_fields() {
    let q = spec("0 0 ? * MON");
    let star = spec("0 0 * * MON");
    assert_eq!(q, star);
    assert_eq!(spec("0 0 1 * ?"), spec("0 0 1 * *"));
    assert_eq!(
        spec("0 0 ?/2 * 1").days_of_month,
        spec("0 0 */2 * 1").days_of_month
    );
}

#[test]
fn six_field_forms() {
    let s = spec("*/20 30 2 * * *");
    assert_eq!(s.seconds, bits(&[0, 20, 40]));
    assert_eq!(s.minutes, bits(&[30]));
    assert_eq!(s.hours, bits(&[2]));
    assert_eq!(spec("* * * * * *").seconds, range_bits(0, 59));
    assert_eq!(
        spec("5,10-12 0 0 1 JAN SUN").seconds,
        bits(&[5, 10, 11, 12])
    );
    assert_eq!(spec("0 0 0 * * *"), spec("0 0 * * *"));
}

#[test]
fn whitespace_and_accessors() {
    let s = schedule("  0\t0  * *  *  ", "Europe/London");
    assert_eq!(s.expr(), "  0\t0  * *  *  ");
    assert_eq!(s.timezone(), "Europe/London");
    assert_eq!(spec("  0\t0  * *  *  "), spec("0 0 * * *"));
}

#[test]
fn macros_equal_their_expansion() {
    for (macro_, expansion) in [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ] {
        assert_eq!(spec(macro_), spec(expansion), "{macro_}");
    }
}

#[test]
fn every_durations() {
    for (expr, period) in [
        ("@every 1s", 1),
        ("@every 30s", 30),
        ("@every 5m", 300),
        ("@every 2h", 7200),
        ("@every 1d", 86_400),
        ("@every 1h30m", 5400),
        ("@every 1d2h3m4s", 93_784),
        ("@every 90m", 5400),
        ("@every 1H30M", 5400),
        ("@EVERY 10s", 10),
        ("  @every   45s ", 45),
    ] {
        let s = schedule(expr, "UTC");
        assert_eq!(s.kind, Kind::Every { period }, "{expr}");
    }
}

#[test]
fn fixed_time_or_wildcard() {
    for (expr, fixed) in [
        ("30 2 * * *", true),
        ("0 9,17 * * MON-FRI", true),
        ("0 0-23 * * *", true),
        ("15,45 1-3 * * *", true),
        ("@daily", true),
        ("@weekly", true),
        ("@monthly", true),
        ("@yearly", true),
        ("0 30 2 * * *", true),
        ("0-59 30 2 * * *", true),
        ("*/15 * * * *", false),
        ("0 * * * *", false),
        ("@hourly", false),
        ("0 */2 * * *", false),
        ("0 1-23/2 * * *", false),
        ("5/10 2 * * *", false),
        ("*/10 2 * * *", false),
        ("0,*/30 2 * * *", false),
        ("* 30 2 * * *", false),
        ("*/20 30 2 * * *", false),
        ("0 30 * * * *", false),
    ] {
        assert_eq!(spec(expr).fixed_time, fixed, "{expr}");
    }
}

#[test]
fn day_fields_combine_like_isc_cron() {
    for (expr, days_and) in [
        ("0 0 13 * FRI", false),
        ("0 0 1-7 * MON", false),
        ("0 0 * * FRI", true),
        ("0 0 13 * *", true),
        ("0 0 ? * FRI", true),
        ("0 0 13 * ?", true),
        ("0 0 */2 * MON", true),
        ("0 0 1 * */2", true),
    ] {
        assert_eq!(spec(expr).days_and, days_and, "{expr}");
    }
    // April 2026: Fridays are the 3rd, 10th, 17th and 24th; the 13th is a Monday.
    assert_eq!(
        fires("0 0 13 * FRI", "UTC", "2026-04-01T00:00:00Z", 5),
        [
            "2026-04-03T00:00:00Z",
            "2026-04-10T00:00:00Z",
            "2026-04-13T00:00:00Z",
            "2026-04-17T00:00:00Z",
            "2026-04-24T00:00:00Z"
        ]
    );
    assert_eq!(
        fires("0 0 * * FRI", "UTC", "2026-04-01T00:00:00Z", 2),
        ["2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z"]
    );
    // A day field starting with `*` is unrestricted for ISC cron even with a step, so both
    // must match: Mondays (6, 13, 20, 27 April; 4, 11, 18, 25 May) on odd days.
    assert_eq!(
        fires("0 0 */2 * MON", "UTC", "2026-04-01T00:00:00Z", 4),
        [
            "2026-04-13T00:00:00Z",
            "2026-04-27T00:00:00Z",
            "2026-05-11T00:00:00Z",
            "2026-05-25T00:00:00Z"
        ]
    );
}

#[test]
fn impossible_dates_parse_but_never_fire() {
    for expr in [
        "0 0 30 2 *",
        "0 0 31 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 30,31 FEB *",
        "0 0 0 30 2 ?",
    ] {
        let s = schedule(expr, "America/New_York");
        assert!(spec(expr).never, "{expr}");
        assert_eq!(s.next_after(ts("2026-01-01T00:00:00Z")), None, "{expr}");
        assert_eq!(
            s.iter_after(ts("2026-01-01T00:00:00Z")).count(),
            0,
            "{expr}"
        );
    }
    // Either-day semantics: Mondays in February still fire.
    assert!(!spec("0 0 30 2 MON").never);
    assert_eq!(
        fires("0 0 30 2 MON", "UTC", "2026-01-01T00:00:00Z", 1),
        ["2026-02-02T00:00:00Z"]
    );
    assert!(!spec("0 0 29 2 *").never);
    assert!(!spec("0 0 31 1-2 *").never);
}

#[test]
fn errors_name_the_field_and_the_text() {
    let cases: &[(&str, &str)] = &[
        ("0 25 * * *", "field 2 (hour): 25 is out of range 0-23"),
        ("60 * * * *", "field 1 (minute): 60 is out of range 0-59"),
        (
            "0 0 0 * *",
            "field 3 (day-of-month): 0 is out of range 1-31",
        ),
        (
            "0 0 32 * *",
            "field 3 (day-of-month): 32 is out of range 1-31",
        ),
        ("0 0 * 0 *", "field 4 (month): 0 is out of range 1-12"),
        ("0 0 * 13 *", "field 4 (month): 13 is out of range 1-12"),
        ("0 0 * * 8", "field 5 (day-of-week): 8 is out of range 0-7"),
        (
            "0 0 1-40 * *",
            "field 3 (day-of-month): 40 is out of range 1-31",
        ),
        (
            "0 99999999999 * * *",
            "field 2 (hour): 99999999999 is out of range 0-23",
        ),
        ("60 0 0 * * *", "field 1 (second): 60 is out of range 0-59"),
        ("0 60 0 * * *", "field 2 (minute): 60 is out of range 0-59"),
        ("0 0 25 * * *", "field 3 (hour): 25 is out of range 0-23"),
        (
            "0 0 0 32 * *",
            "field 4 (day-of-month): 32 is out of range 1-31",
        ),
        ("0 0 0 * 13 *", "field 5 (month): 13 is out of range 1-12"),
        (
            "0 0 0 * * 8",
            "field 6 (day-of-week): 8 is out of range 0-7",
        ),
        ("x * * * *", "field 1 (minute): \"x\" is not a number 0-59"),
        (
            "0 0 * FOO *",
            "field 4 (month): \"FOO\" is not a number 1-12 or a name JAN-DEC",
        ),
        (
            "0 0 * MON *",
            "field 4 (month): \"MON\" is not a number 1-12 or a name JAN-DEC",
        ),
        (
            "0 0 * * JAN",
            "field 5 (day-of-week): \"JAN\" is not a number 0-7 or a name SUN-SAT",
        ),
        (
            "0 0 * * MONDAY",
            "field 5 (day-of-week): \"MONDAY\" is not a number 0-7 or a name SUN-SAT",
        ),
        (
            "0 0 * JAN-FOO *",
            "field 4 (month): \"FOO\" is not a number 1-12 or a name JAN-DEC",
        ),
        (
            "1,,2 * * * *",
            "field 1 (minute): empty list item in \"1,,2\"",
        ),
        (",1 * * * *", "field 1 (minute): empty list item in \",1\""),
        ("0 1, * * *", "field 2 (hour): empty list item in \"1,\""),
        (
            "*/0 * * * *",
            "field 1 (minute): step 0 in \"*/0\" is not allowed; use 1 or more",
        ),
        (
            "0 0 1-10/0 * *",
            "field 3 (day-of-month): step 0 in \"1-10/0\" is not allowed; use 1 or more",
        ),
        (
            "*/61 * * * *",
            "field 1 (minute): step 61 in \"*/61\" is larger than the 60 values of the field (0-59)",
        ),
        (
            "0 0 * * */8",
            "field 5 (day-of-week): step 8 in \"*/8\" is larger than the 7 values of the field (0-6)",
        ),
        (
            "*/ * * * *",
            "field 1 (minute): \"*/\" is missing the step after \"/\"",
        ),
        (
            "*/x * * * *",
            "field 1 (minute): step \"x\" in \"*/x\" is not a number",
        ),
        (
            "*/-1 * * * *",
            "field 1 (minute): step \"-1\" in \"*/-1\" is not a number",
        ),
        (
            "*/2/3 * * * *",
            "field 1 (minute): \"*/2/3\" has more than one \"/\"",
        ),
        (
            "/5 * * * *",
            "field 1 (minute): \"/5\" is missing a value before \"/\"",
        ),
        (
            "10-5 * * * *",
            "field 1 (minute): range \"10-5\" is reversed (10 > 5)",
        ),
        (
            "0 0 * * SAT-SUN",
            "field 5 (day-of-week): range \"SAT-SUN\" is reversed (6 > 0)",
        ),
        (
            "0 0 * DEC-JAN *",
            "field 4 (month): range \"DEC-JAN\" is reversed (12 > 1)",
        ),
        (
            "-5 * * * *",
            "field 1 (minute): \"-5\" is missing the start of the range",
        ),
        (
            "5- * * * *",
            "field 1 (minute): \"5-\" is missing the end of the range",
        ),
        (
            "1-2-3 * * * *",
            "field 1 (minute): \"2-3\" is not a number 0-59",
        ),
        (
            "? * * * *",
            "field 1 (minute): \"?\" is only allowed in the day-of-month and day-of-week fields",
        ),
        (
            "0 ? * * *",
            "field 2 (hour): \"?\" is only allowed in the day-of-month and day-of-week fields",
        ),
        (
            "0 0 * ? *",
            "field 4 (month): \"?\" is only allowed in the day-of-month and day-of-week fields",
        ),
        (
            "0 0 L * *",
            "field 3 (day-of-month): \"L\" is not a number 1-31 (L, W and # are not supported)",
        ),
        (
            "0 0 15W * *",
            "field 3 (day-of-month): \"15W\" is not a number 1-31 (L, W and # are not supported)",
        ),
        (
            "0 0 * * 5#3",
            "field 5 (day-of-week): \"5#3\" is not a number 0-7 or a name SUN-SAT (L, W and # are not supported)",
        ),
        (
            "0 0 * * 5L",
            "field 5 (day-of-week): \"5L\" is not a number 0-7 or a name SUN-SAT (L, W and # are not supported)",
        ),
        (
            "0 0 * *",
            "found 4 fields, expected 5 (minute hour day-of-month month day-of-week) or 6 \
             (second minute hour day-of-month month day-of-week), or a macro such as @daily \
             or @every 5m",
        ),
        (
            "0 0 * * * * *",
            "found 7 fields, expected 5 (minute hour day-of-month month day-of-week) or 6 \
             (second minute hour day-of-month month day-of-week), or a macro such as @daily \
             or @every 5m",
        ),
        (
            "",
            "found 0 fields, expected 5 (minute hour day-of-month month day-of-week) or 6 \
             (second minute hour day-of-month month day-of-week), or a macro such as @daily \
             or @every 5m",
        ),
        (
            "daily",
            "found 1 field, expected 5 (minute hour day-of-month month day-of-week) or 6 \
             (second minute hour day-of-month month day-of-week), or a macro such as @daily \
             or @every 5m",
        ),
        (
            "@fortnightly",
            "unknown macro \"@fortnightly\"; expected @yearly, @annually, @monthly, @weekly, \
             @daily, @midnight, @hourly or @every DURATION",
        ),
        (
            "@reboot",
            "unknown macro \"@reboot\"; expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every DURATION",
        ),
        ("@daily 5", "@daily takes no fields, found \"5\" after it"),
        (
            "@every",
            "@every: missing duration; expected a duration such as 30s, 5m, 2h, 1d or 1h30m",
        ),
        ("@every 0s", "@every: \"0s\" must be at least 1s"),
        ("@every 0h0m", "@every: \"0h0m\" must be at least 1s"),
        (
            "@every 500ms",
            "@every: \"500ms\": durations below one second are not supported",
        ),
        (
            "@every 5",
            "@every: \"5\" is missing a unit (d, h, m or s) at the end",
        ),
        (
            "@every 1h30",
            "@every: \"1h30\" is missing a unit (d, h, m or s) at the end",
        ),
        (
            "@every 1.5h",
            "@every: \"1.5h\" has an unknown unit; expected a duration such as 30s, 5m, 2h, 1d or 1h30m",
        ),
        (
            "@every 2w",
            "@every: \"2w\" has an unknown unit; expected a duration such as 30s, 5m, 2h, 1d or 1h30m",
        ),
        (
            "@every -5s",
            "@every: \"-5s\" is not a valid duration; expected a duration such as 30s, 5m, 2h, 1d or 1h30m",
        ),
        (
            "@every h",
            "@every: \"h\" is not a valid duration; expected a duration such as 30s, 5m, 2h, 1d or 1h30m",
        ),
        (
            "@every 30m1h",
            "@every: \"30m1h\": units must be largest first, each at most once",
        ),
        (
            "@every 1h1h",
            "@every: \"1h1h\": units must be largest first, each at most once",
        ),
        (
            "@every 99999999999999999999d",
            "@every: \"99999999999999999999d\" is too long",
        ),
        (
            "@every 5m 10s",
            "@every: unexpected \"10s\" after the duration; expected a duration such as 30s, 5m, 2h, 1d or 1h30m",
        ),
    ];
    for (expr, reason) in cases {
        let e = error(expr);
        assert_eq!(
            e.to_string(),
            format!("bad cron expression {expr:?}: {reason}"),
            "{expr:?}"
        );
        assert_eq!(e.expr(), *expr);
    }
}

#[test]
fn error_accessors() {
    let e = error("0 25 * * *");
    assert_eq!(
        e.to_string(),
        "bad cron expression \"0 25 * * *\": field 2 (hour): 25 is out of range 0-23"
    );
    assert_eq!(
        e.part(),
        CronErrorPart::Field {
            index: 2,
            name: "hour"
        }
    );
    assert_eq!(e.text(), "25");
    assert_eq!(e.reason(), "25 is out of range 0-23");

    let e = error("0 0 1-10/0 * *");
    assert_eq!(
        e.part(),
        CronErrorPart::Field {
            index: 3,
            name: "day-of-month"
        }
    );
    assert_eq!(e.text(), "1-10/0");

    let e = error("0 0 1 * 2,SAT-MON");
    assert_eq!(
        e.part(),
        CronErrorPart::Field {
            index: 5,
            name: "day-of-week"
        }
    );
    assert_eq!(e.text(), "SAT-MON");

    let e = error("0 0 0 * * *  x");
    assert_eq!(e.part(), CronErrorPart::FieldCount);
    assert_eq!(error("@every 0s").part(), CronErrorPart::Every);
    assert_eq!(error("@every 0s").text(), "0s");
    assert_eq!(error("@often").part(), CronErrorPart::Macro);
    assert_eq!(error("@often").text(), "@often");
}

#[test]
fn unknown_time_zone_is_named() {
    let e = CronSchedule::parse("0 0 * * *", "Mars/Olympus_Mons").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad cron expression \"0 0 * * *\": unknown time zone \"Mars/Olympus_Mons\"; expected an \
         IANA name such as \"Europe/Paris\" or \"UTC\""
    );
    assert_eq!(e.part(), CronErrorPart::TimeZone);
    assert_eq!(e.text(), "Mars/Olympus_Mons");
    assert_eq!(
        CronSchedule::parse("0 0 * * *", "").unwrap_err().part(),
        CronErrorPart::TimeZone
    );
    // A bad expression is reported before the zone.
    assert_eq!(
        CronSchedule::parse("0 25 * * *", "Nowhere")
            .unwrap_err()
            .text(),
        "25"
    );
}

#[test]
fn schedules_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<CronSchedule>();
    assert_send_sync::<CronError>();
}

#[test]
fn time_zone_database_is_available() {
    for zone in ZONES {
        CronSchedule::parse("0 0 * * *", zone).unwrap_or_else(|e| panic!("{e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Next fire times without DST

#[test]
fn strictly_after_whole_and_fractional_seconds() {
    let s = schedule("* * * * * *", "UTC");
    assert_eq!(
        s.next_after(ts("2026-05-01T10:00:00Z")),
        Some(ts("2026-05-01T10:00:01Z"))
    );
    assert_eq!(
        s.next_after(ts("2026-05-01T10:00:00.5Z")),
        Some(ts("2026-05-01T10:00:01Z"))
    );
    assert_eq!(
        s.next_after(ts("2026-05-01T09:59:59.999999999Z")),
        Some(ts("2026-05-01T10:00:00Z"))
    );
    let s = schedule("0 10 * * *", "UTC");
    assert_eq!(
        s.next_after(ts("2026-05-01T10:00:00Z")),
        Some(ts("2026-05-02T10:00:00Z"))
    );
    assert_eq!(
        s.next_after(ts("2026-05-01T09:59:59.9Z")),
        Some(ts("2026-05-01T10:00:00Z"))
    );
    // Before 1970, sub-second parts of negative timestamps round the right way.
    assert_eq!(
        s.next_after(ts("1960-01-01T09:59:59.5Z")),
        Some(ts("1960-01-01T10:00:00Z"))
    );
    assert_eq!(
        s.next_after(ts("1960-01-01T10:00:00.5Z")),
        Some(ts("1960-01-02T10:00:00Z"))
    );
}

#[test]
fn calendar_edges() {
    assert_eq!(
        fires("0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", 4),
        [
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-07-31T00:00:00Z",
            "2026-08-31T00:00:00Z"
        ]
    );
    assert_eq!(
        fires("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 3),
        [
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z",
            "2036-02-29T00:00:00Z"
        ]
    );
    // 2100 is not a leap year.
    assert_eq!(
        fires("0 0 29 2 *", "Europe/London", "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00Z"]
    );
    assert_eq!(
        fires("@yearly", "UTC", "2026-12-31T23:59:59Z", 2),
        ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]
    );
    assert_eq!(
        fires("59 23 31 12 *", "UTC", "2026-06-01T00:00:00Z", 1),
        ["2026-12-31T23:59:00Z"]
    );
    // 2026-02-01 is a Sunday.
    assert_eq!(
        fires("@weekly", "UTC", "2026-01-27T00:00:00Z", 2),
        ["2026-02-01T00:00:00Z", "2026-02-08T00:00:00Z"]
    );
    assert_eq!(
        fires("@monthly", "UTC", "2026-01-27T00:00:00Z", 2),
        ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]
    );
    assert_eq!(
        fires("*/20 59 23 31 12 *", "UTC", "2026-12-31T23:59:30Z", 2),
        ["2026-12-31T23:59:40Z", "2027-12-31T23:59:00Z"]
    );
    assert_eq!(
        fires("30 * * * * *", "UTC", "2026-03-01T00:00:00Z", 2),
        ["2026-03-01T00:00:30Z", "2026-03-01T00:01:30Z"]
    );
}

#[test]
fn end_of_time() {
    let s = schedule("0 0 1 1 *", "UTC");
    assert_eq!(s.next_after(ts("9999-06-01T00:00:00Z")), None);
    assert_eq!(s.next_after(Timestamp::MAX), None);
    let s = schedule("0 0 1 1 *", "America/New_York");
    assert_eq!(s.next_after(ts("9999-06-01T00:00:00Z")), None);
    assert_eq!(
        schedule("@every 1d", "UTC").next_after(Timestamp::MAX),
        None
    );
    assert_eq!(
        schedule("* * * * * *", "Europe/London").next_after(Timestamp::MAX),
        None
    );
    assert!(
        schedule("* * * * *", "UTC")
            .next_after(Timestamp::MIN)
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// Real DST transitions: one table, one checker

/// One zone, the transitions the rows are about (checked against the time zone database, so
/// that the rows cannot silently test a quiet day), and fire times around them, each
/// transition described in a comment above its rows.
struct DstZone {
    zone: &'static str,
    transitions: &'static [&'static str],
    fires: &'static [Fires],
}

/// `(expr, after, expected)`: the first `expected.len()` fire instants of `expr` strictly after
/// `after`, in UTC. The first is `next_after(after)`, since `iter_after` starts with it.
type Fires = (&'static str, &'static str, &'static [&'static str]);

/// A new zone or transition is a new entry; the checker below walks them all.
#[rustfmt::skip]
const DST_ZONES: &[DstZone] = &[
    DstZone {
        zone: "Asia/Kolkata",
        transitions: &[],
        fires: &[
            // +05:30 all year: nothing shifts on the days the other zones change.
            ("30 2 * * *", "2026-03-07T00:00:00Z",
                &["2026-03-07T21:00:00Z", "2026-03-08T21:00:00Z", "2026-03-09T21:00:00Z"]),
            ("30 1 * * *", "2026-10-31T12:00:00Z",
                &["2026-10-31T20:00:00Z", "2026-11-01T20:00:00Z"]),
            ("0 * * * *", "2026-03-29T00:00:00Z",
                &["2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"]),
            ("*/15 * * * *", "2026-11-01T05:50:00Z",
                &["2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z", "2026-11-01T06:30:00Z"]),
        ],
    },
    DstZone {
        zone: "America/New_York",
        transitions: &["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"],
        fires: &[
            // 2026-03-08 07:00Z: 02:00 EST becomes 03:00 EDT; 02:00-02:59 does not exist.
            ("30 2 * * *", "2026-03-06T12:00:00Z",
                &["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
            ("0 2 * * *", "2026-03-07T12:00:00Z",
                &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]),
            ("0 3 * * *", "2026-03-07T12:00:00Z",
                &["2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"]),
            // Two fire times in the gap and one right after it: one tick.
            ("0,30 2,3 * * *", "2026-03-07T12:00:00Z",
                &["2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:00:00Z"]),
            ("0 0-23 * * *", "2026-03-08T05:30:00Z",
                &["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]),
            ("0 30 2 * * *", "2026-03-07T12:00:00Z",
                &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
            // Wildcard schedules have no ticks in the gap.
            ("0 * * * *", "2026-03-08T05:30:00Z",
                &["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]),
            ("*/15 * * * *", "2026-03-08T06:20:00Z",
                &["2026-03-08T06:30:00Z", "2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z",
                  "2026-03-08T07:15:00Z", "2026-03-08T07:30:00Z"]),
            ("*/15 2 * * *", "2026-03-07T12:00:00Z",
                &["2026-03-09T06:00:00Z", "2026-03-09T06:15:00Z"]),
            ("* 30 2 * * *", "2026-03-07T12:00:00Z", &["2026-03-09T06:30:00Z"]),
            // Starting right at the end of the gap.
            ("30 2 * * *", "2026-03-08T06:59:59Z", &["2026-03-08T07:00:00Z"]),
            ("30 2 * * *", "2026-03-08T06:59:59.5Z", &["2026-03-08T07:00:00Z"]),
            ("30 2 * * *", "2026-03-08T07:00:00Z", &["2026-03-09T06:30:00Z"]),
            // 2026-11-01 06:00Z: 02:00 EDT becomes 01:00 EST; 01:00-01:59 happens twice,
            // at 05:00Z-05:59Z (EDT) and 06:00Z-06:59Z (EST).
            ("30 1 * * *", "2026-10-30T12:00:00Z",
                &["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
            ("0 1 * * *", "2026-10-31T12:00:00Z",
                &["2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z"]),
            ("0 2 * * *", "2026-10-31T12:00:00Z",
                &["2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z"]),
            ("0 0-23 * * *", "2026-11-01T03:30:00Z",
                &["2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z",
                  "2026-11-01T08:00:00Z"]),
            // Wildcard schedules fire in both halves of the fold.
            ("0 * * * *", "2026-11-01T03:30:00Z",
                &["2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z",
                  "2026-11-01T07:00:00Z"]),
            ("*/30 * * * *", "2026-11-01T04:45:00Z",
                &["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
                  "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"]),
            ("*/20 30 1 * * *", "2026-11-01T00:00:00Z",
                &["2026-11-01T05:30:00Z", "2026-11-01T05:30:20Z", "2026-11-01T05:30:40Z",
                  "2026-11-01T06:30:00Z", "2026-11-01T06:30:20Z", "2026-11-01T06:30:40Z",
                  "2026-11-02T06:30:00Z"]),
            // Asked from inside the fold, a fixed-time schedule does not fire at the repeat.
            ("30 1 * * *", "2026-11-01T05:30:00Z", &["2026-11-02T06:30:00Z"]),
            ("30 1 * * *", "2026-11-01T05:45:00Z", &["2026-11-02T06:30:00Z"]),
            ("30 1 * * *", "2026-11-01T06:00:00Z", &["2026-11-02T06:30:00Z"]),
            ("30 1 * * *", "2026-11-01T06:15:00Z", &["2026-11-02T06:30:00Z"]),
            ("30 1 * * *", "2026-11-01T06:29:59.9Z", &["2026-11-02T06:30:00Z"]),
            ("30 1 * * *", "2026-11-01T05:29:59Z", &["2026-11-01T05:30:00Z"]),
            ("15,45 1 * * *", "2026-11-01T06:20:00Z", &["2026-11-02T06:15:00Z"]),
            ("15,45 1 * * *", "2026-11-01T05:20:00Z", &["2026-11-01T05:45:00Z"]),
            // A wildcard schedule asked from inside the fold fires at the repeat.
            ("30 * * * *", "2026-11-01T05:30:00Z", &["2026-11-01T06:30:00Z"]),
        ],
    },
    DstZone {
        zone: "Europe/London",
        transitions: &["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"],
        fires: &[
            // 2026-03-29 01:00Z: 01:00 GMT becomes 02:00 BST.
            ("30 1 * * *", "2026-03-27T12:00:00Z",
                &["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
            ("0 * * * *", "2026-03-28T23:30:00Z",
                &["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]),
            ("*/30 1 * * *", "2026-03-28T00:00:00Z",
                &["2026-03-28T01:00:00Z", "2026-03-28T01:30:00Z", "2026-03-30T00:00:00Z",
                  "2026-03-30T00:30:00Z"]),
            ("*/15 * * * *", "2026-03-29T00:40:00Z",
                &["2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"]),
            // 2026-10-25 01:00Z: 02:00 BST becomes 01:00 GMT; 01:00-01:59 happens at
            // 00:00Z-00:59Z and at 01:00Z-01:59Z.
            ("30 1 * * *", "2026-10-23T12:00:00Z",
                &["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
            ("0 * * * *", "2026-10-24T22:30:00Z",
                &["2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z",
                  "2026-10-25T02:00:00Z"]),
            ("*/30 * * * *", "2026-10-24T23:50:00Z",
                &["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z",
                  "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"]),
            ("@daily", "2026-10-24T12:00:00Z", &["2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z"]),
        ],
    },
    DstZone {
        zone: "Australia/Lord_Howe",
        transitions: &["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"],
        fires: &[
            // 2026-04-04 15:00Z: 02:00 +11 becomes 01:30 +10:30; 01:30-01:59 happens at
            // 14:30Z-14:59Z and at 15:00Z-15:29Z.
            ("45 1 * * *", "2026-04-03T00:00:00Z",
                &["2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]),
            ("0 1 * * *", "2026-04-03T20:00:00Z",
                &["2026-04-04T14:00:00Z", "2026-04-05T14:30:00Z"]),
            ("30,45 1 * * *", "2026-04-04T14:00:00Z",
                &["2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:00:00Z"]),
            ("0 * * * *", "2026-04-04T12:30:00Z",
                &["2026-04-04T13:00:00Z", "2026-04-04T14:00:00Z", "2026-04-04T15:30:00Z",
                  "2026-04-04T16:30:00Z"]),
            ("*/15 1 * * *", "2026-04-04T13:30:00Z",
                &["2026-04-04T14:00:00Z", "2026-04-04T14:15:00Z", "2026-04-04T14:30:00Z",
                  "2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z",
                  "2026-04-05T14:30:00Z"]),
            ("*/15 * * * *", "2026-04-04T14:20:00Z",
                &["2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z",
                  "2026-04-04T15:15:00Z", "2026-04-04T15:30:00Z", "2026-04-04T15:45:00Z"]),
            // 2026-10-03 15:30Z: 02:00 +10:30 becomes 02:30 +11; 02:00-02:29 does not exist.
            ("15 2 * * *", "2026-10-02T00:00:00Z",
                &["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]),
            ("45 2 * * *", "2026-10-02T20:00:00Z", &["2026-10-03T15:45:00Z"]),
            ("0 * * * *", "2026-10-03T14:00:00Z",
                &["2026-10-03T14:30:00Z", "2026-10-03T16:00:00Z"]),
            ("*/15 * * * *", "2026-10-03T14:50:00Z",
                &["2026-10-03T15:00:00Z", "2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z",
                  "2026-10-03T15:45:00Z"]),
            ("*/15 2 * * *", "2026-10-02T20:00:00Z",
                &["2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z", "2026-10-04T15:00:00Z"]),
        ],
    },
    DstZone {
        zone: "America/Santiago",
        transitions: &["2026-04-05T03:00:00Z", "2026-09-06T04:00:00Z"],
        fires: &[
            // 2026-04-05 03:00Z: 00:00 -03 becomes 23:00 -04 of the day before; 23:00-23:59 on
            // 2026-04-04 happens at 02:00Z-02:59Z and at 03:00Z-03:59Z.
            ("30 23 * * *", "2026-04-03T12:00:00Z",
                &["2026-04-04T02:30:00Z", "2026-04-05T02:30:00Z", "2026-04-06T03:30:00Z"]),
            ("@daily", "2026-04-03T12:00:00Z", &["2026-04-04T03:00:00Z", "2026-04-05T04:00:00Z"]),
            ("0 * * * *", "2026-04-05T00:30:00Z",
                &["2026-04-05T01:00:00Z", "2026-04-05T02:00:00Z", "2026-04-05T03:00:00Z",
                  "2026-04-05T04:00:00Z"]),
            // 2026-09-06 04:00Z: 00:00 -04 becomes 01:00 -03; midnight does not exist that day.
            ("@daily", "2026-09-04T12:00:00Z",
                &["2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"]),
            ("30 0 * * *", "2026-09-05T12:00:00Z",
                &["2026-09-06T04:00:00Z", "2026-09-07T03:30:00Z"]),
            // Sunday midnight falls in the gap; Saturday 23:30 does not.
            ("0 0 * * SUN", "2026-09-01T00:00:00Z",
                &["2026-09-06T04:00:00Z", "2026-09-13T03:00:00Z"]),
            ("0 * * * *", "2026-09-06T02:30:00Z",
                &["2026-09-06T03:00:00Z", "2026-09-06T04:00:00Z", "2026-09-06T05:00:00Z"]),
        ],
    },
    DstZone {
        zone: "Pacific/Apia",
        transitions: &["2011-12-30T10:00:00Z"],
        fires: &[
            // Pacific/Apia went from 2011-12-29 23:59:59 -10 to 2011-12-31 00:00 +14 at
            // 2011-12-30 10:00Z: 2011-12-30 never happened there.
            ("0 9 * * *", "2011-12-28T00:00:00Z",
                &["2011-12-28T19:00:00Z", "2011-12-29T19:00:00Z", "2011-12-30T10:00:00Z",
                  "2011-12-30T19:00:00Z"]),
            ("0 9 30 12 *", "2011-12-28T00:00:00Z",
                &["2011-12-30T10:00:00Z", "2012-12-29T19:00:00Z"]),
            ("0 */6 * * *", "2011-12-30T02:00:00Z",
                &["2011-12-30T04:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T16:00:00Z"]),
        ],
    },
];

#[test]
fn fire_times_around_real_dst_transitions() {
    let mut wrong = Vec::new();
    for dst in DST_ZONES {
        let zone = dst.zone;
        assert!(!dst.fires.is_empty(), "{zone}: no rows");
        let tz = TimeZone::get(zone).unwrap();
        for &at in dst.transitions {
            let next = tz.following(ts(at) - SignedDuration::from_secs(1)).next();
            if next.map(|t| t.timestamp()) != Some(ts(at)) {
                wrong.push(format!("{zone} has no transition at {at}"));
            }
        }
        for &(expr, after, expected) in dst.fires {
            let got = fires(expr, zone, after, expected.len());
            if got != expected {
                wrong.push(format!(
                    "{expr:?} in {zone} after {after}: expected {expected:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "DST_ZONES disagrees with the code or the time zone database ({}):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_is_aligned_to_the_epoch_in_every_zone() {
    for zone in ZONES {
        assert_eq!(
            fires("@every 30s", zone, "2026-03-08T06:59:45Z", 3),
            [
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:00:30Z",
                "2026-03-08T07:01:00Z"
            ],
            "{zone}"
        );
        assert_eq!(
            fires("@every 30s", zone, "2026-03-08T06:59:59.9Z", 1),
            ["2026-03-08T07:00:00Z"],
            "{zone}"
        );
        assert_eq!(
            fires("@every 1h", zone, "2026-11-01T05:30:00Z", 3),
            [
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T08:00:00Z"
            ],
            "{zone}"
        );
        assert_eq!(
            fires("@every 1d", zone, "2026-03-29T00:30:00Z", 2),
            ["2026-03-30T00:00:00Z", "2026-03-31T00:00:00Z"],
            "{zone}"
        );
        // 2026-03-12 is a Thursday.
        assert_eq!(
            fires("@every 7d", zone, "2026-03-08T00:00:00Z", 1),
            ["2026-03-12T00:00:00Z"],
            "{zone}"
        );
        let s = schedule("@every 1h30m", zone);
        let ticks: Vec<Timestamp> = s.iter_after(ts("2026-10-24T00:00:00Z")).take(100).collect();
        for pair in ticks.windows(2) {
            assert_eq!(pair[1].as_second() - pair[0].as_second(), 5400);
        }
        assert!(
            ticks
                .iter()
                .all(|t| t.as_second() % 5400 == 0 && t.subsec_nanosecond() == 0)
        );
        assert_eq!(
            ticks[0],
            ts("2026-10-24T00:00:00Z") + SignedDuration::from_secs(5400)
        );
        let s = schedule("@every 7s", zone);
        assert_eq!(
            s.next_after(ts("1970-01-01T00:00:00Z")),
            Some(ts("1970-01-01T00:00:07Z"))
        );
        assert_eq!(
            s.next_after(ts("1969-12-31T23:59:50Z")),
            Some(ts("1969-12-31T23:59:53Z"))
        );
    }
}

#[test]
fn successive_ticks_strictly_increase_around_transitions() {
    let exprs = [
        "30 2 * * *",
        "30 1 * * *",
        "0,30 1-3 * * *",
        "0 * * * *",
        "*/15 * * * *",
        "*/7 1,2 * * *",
        "0 */20 * * * *",
        "@daily",
    ];
    for zone in ZONES {
        let tz = TimeZone::get(zone).unwrap();
        for transition in tz.following(ts("2025-12-01T00:00:00Z")).take(4) {
            let start = transition.timestamp() - SignedDuration::from_hours(30);
            for expr in exprs {
                let s = schedule(expr, zone);
                let mut prev = start;
                for t in s.iter_after(start).take(200) {
                    assert!(t > prev, "{expr} in {zone}: {t} after {prev}");
                    assert_eq!(s.next_after(t - SignedDuration::from_nanos(1)), Some(t));
                    prev = t;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A brute-force oracle and property tests against it

const ZONES: [&str; 7] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Chatham",
];

/// One list item of a generated field, with its own membership rule: an implementation of
/// the syntax that does not go through the parser's bitsets.
#[derive(Clone, Debug)]
enum Item {
    Star,
    StarStep(u8),
    Value(u8),
    Range(u8, u8),
    RangeStep(u8, u8, u8),
    ValueStep(u8, u8),
}

#[derive(Clone, Copy, Debug)]
struct Def {
    min: u8,
    max: u8,
    star_max: u8,
    names: &'static [&'static str],
}

const SECOND_DEF: Def = Def {
    min: 0,
    max: 59,
    star_max: 59,
    names: &[],
};
const MINUTE_DEF: Def = SECOND_DEF;
const HOUR_DEF: Def = Def {
    min: 0,
    max: 23,
    star_max: 23,
    names: &[],
};
const DOM_DEF: Def = Def {
    min: 1,
    max: 31,
    star_max: 31,
    names: &[],
};
const MONTH_DEF: Def = Def {
    min: 1,
    max: 12,
    star_max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW_DEF: Def = Def {
    min: 0,
    max: 7,
    star_max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

#[derive(Clone, Debug)]
struct FieldModel {
    def: Def,
    items: Vec<Item>,
    /// Write `*` as `?` (day fields only).
    question: bool,
    /// Write values as names where there are names: 0 none, 1 lower, 2 upper, 3 capitalized.
    names: u8,
}

impl FieldModel {
    fn contains(&self, v: u8) -> bool {
        let d = self.def;
        self.items.iter().any(|item| match *item {
            Item::Star => (d.min..=d.star_max).contains(&v),
            Item::StarStep(n) => (d.min..=d.star_max).contains(&v) && (v - d.min).is_multiple_of(n),
            Item::Value(a) => v == a,
            Item::Range(a, b) => (a..=b).contains(&v),
            Item::RangeStep(a, b, n) => (a..=b).contains(&v) && (v - a).is_multiple_of(n),
            Item::ValueStep(a, n) => {
                (a..=a.max(d.star_max)).contains(&v) && (v - a).is_multiple_of(n)
            }
        })
    }

    fn starts_with_star(&self) -> bool {
        matches!(self.items[0], Item::Star | Item::StarStep(_))
    }

    fn wildcard(&self) -> bool {
        self.items
            .iter()
            .any(|i| !matches!(i, Item::Value(_) | Item::Range(..)))
    }

    fn value(&self, v: u8) -> String {
        match self.def.names.get(usize::from(v - self.def.min)) {
            Some(name) if self.names > 0 && !(self.def.max == 7 && v == 7) => match self.names {
                1 => name.to_string(),
                2 => name.to_uppercase(),
                _ => name[..1].to_uppercase() + &name[1..],
            },
            _ => v.to_string(),
        }
    }

    fn render(&self) -> String {
        let star = if self.question { "?" } else { "*" };
        let items: Vec<String> = self
            .items
            .iter()
            .map(|item| match *item {
                Item::Star => star.to_string(),
                Item::StarStep(n) => format!("{star}/{n}"),
                Item::Value(a) => self.value(a),
                Item::Range(a, b) => format!("{}-{}", self.value(a), self.value(b)),
                Item::RangeStep(a, b, n) => format!("{}-{}/{n}", self.value(a), self.value(b)),
                Item::ValueStep(a, n) => format!("{}/{n}", self.value(a)),
            })
            .collect();
        items.join(",")
    }
}

#[derive(Clone, Debug)]
struct Model {
    second: Option<FieldModel>,
    minute: FieldModel,
    hour: FieldModel,
    dom: FieldModel,
    month: FieldModel,
    dow: FieldModel,
}

impl Model {
    fn render(&self) -> String {
        let mut fields: Vec<String> = self.second.iter().map(FieldModel::render).collect();
        for f in [&self.minute, &self.hour, &self.dom, &self.month, &self.dow] {
            fields.push(f.render());
        }
        fields.join(" ")
    }

    fn fixed_time(&self) -> bool {
        !self.minute.wildcard()
            && !self.hour.wildcard()
            && !self.second.as_ref().is_some_and(FieldModel::wildcard)
    }

    fn matches(&self, dt: DateTime) -> bool {
        let second_ok = match &self.second {
            Some(f) => f.contains(dt.second() as u8),
            None => dt.second() == 0,
        };
        let weekday = dt.weekday().to_sunday_zero_offset() as u8;
        let dom = self.dom.contains(dt.day() as u8);
        let dow = self.dow.contains(weekday) || (weekday == 0 && self.dow.contains(7));
        let day_ok = if self.dom.starts_with_star() || self.dow.starts_with_star() {
            dom && dow
        } else {
            dom || dow
        };
        second_ok
            && self.minute.contains(dt.minute() as u8)
            && self.hour.contains(dt.hour() as u8)
            && self.month.contains(dt.month() as u8)
            && day_ok
    }
}

/// Every fire instant in `(start, end]`, found by visiting every UTC minute (5 fields) or
/// second (6 fields), converting it to the wall clock with jiff and applying the DST policy
/// literally:
///
/// - a wildcard schedule fires whenever the wall clock shows a matching time;
/// - a fixed-time schedule fires when the wall clock shows a matching time later than any it
///   showed before, or when the wall clock just jumped over a matching time (a gap).
fn oracle(model: &Model, zone: &str, start: Timestamp, end: Timestamp) -> Vec<Timestamp> {
    let step: i64 = if model.second.is_some() { 1 } else { 60 };
    // Start early enough to know what the wall clock showed before a fold at `start`.
    let warmup = if model.second.is_some() {
        6 * 3600
    } else {
        3 * 86_400
    };
    let first = (start.as_second() - warmup).div_euclid(step) * step;
    let wall_clock = wall_clock(zone, first - step, end.as_second(), step);
    let step_span = jiff::Span::new().seconds(step);
    let fixed = model.fixed_time();
    let (mut previous, mut previous_offset) = wall_clock[0];
    let mut latest_shown = previous;
    let mut out = Vec::new();
    for (i, s) in (first..=end.as_second()).step_by(step as usize).enumerate() {
        let t = Timestamp::from_second(s).unwrap();
        let (now, offset) = wall_clock[i + 1];
        let fires = if fixed {
            let mut skipped_match = false;
            if offset > previous_offset {
                // The clocks went forward: look at the civil times they skipped.
                let mut skipped = previous.checked_add(step_span).unwrap();
                while skipped < now {
                    skipped_match |= model.matches(skipped);
                    skipped = skipped.checked_add(step_span).unwrap();
                }
            }
            skipped_match || (now > latest_shown && model.matches(now))
        } else {
            model.matches(now)
        };
        if fires && t > start {
            out.push(t);
        }
        latest_shown = latest_shown.max(now);
        (previous, previous_offset) = (now, offset);
    }
    out
}

/// What the wall clock of `zone` shows, with its UTC offset in seconds.
type WallClock = Rc<Vec<(DateTime, i32)>>;

/// The wall clock of `zone` at `first`, `first + step`, ... up to `last`. The last result is
/// kept, since tests check many schedules over the same window.
fn wall_clock(zone: &str, first: i64, last: i64, step: i64) -> WallClock {
    type Key = (String, i64, i64, i64);
    thread_local! {
        static LAST: RefCell<Option<(Key, WallClock)>> = const { RefCell::new(None) };
    }
    let key = (zone.to_string(), first, last, step);
    LAST.with_borrow_mut(|cached| {
        if let Some((k, clock)) = cached.as_ref()
            && *k == key
        {
            return clock.clone();
        }
        let tz = TimeZone::get(zone).unwrap();
        let clock: WallClock = (first..=last)
            .step_by(step as usize)
            .map(|s| {
                let t = Timestamp::from_second(s).unwrap();
                (tz.to_datetime(t), tz.to_offset(t).seconds())
            })
            .collect::<Vec<_>>()
            .into();
        *cached = Some((key, clock.clone()));
        clock
    })
}

fn ticks(s: &CronSchedule, start: Timestamp, end: Timestamp) -> Vec<Timestamp> {
    s.iter_after(start).take_while(|&t| t <= end).collect()
}

fn check_against_oracle(
    model: &Model,
    zone: &str,
    start: Timestamp,
    end: Timestamp,
    probes: &[(i64, i32)],
) {
    let expr = model.render();
    let s = CronSchedule::parse(&expr, zone).unwrap_or_else(|e| panic!("{e}"));
    let expected = oracle(model, zone, start, end);
    let got = ticks(&s, start, end);
    for pair in got.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{expr:?} in {zone}: not increasing: {pair:?}"
        );
    }
    if got != expected {
        let missing: Vec<_> = expected
            .iter()
            .filter(|t| !got.contains(t))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|t| !expected.contains(t))
            .take(5)
            .collect();
        panic!(
            "{expr:?} in {zone} from {start} to {end}: {} ticks, oracle {}; missing {missing:?}, \
             extra {extra:?}",
            got.len(),
            expected.len()
        );
    }
    // Just before each tick (a tick at the end of a gap is found from right before it).
    let just_before = SignedDuration::from_nanos(1);
    for &t in &expected {
        assert_eq!(
            s.next_after(t - just_before),
            Some(t),
            "{expr:?} in {zone} after {t} - 1ns"
        );
    }
    // From arbitrary instants in the window, and from around and inside every transition
    // (inside a fold, a fixed-time schedule must remember what the wall clock showed).
    let span = end.as_second() - start.as_second();
    let tz = TimeZone::get(zone).unwrap();
    let mut instants: Vec<Timestamp> = probes
        .iter()
        .map(|&(offset, nanos)| {
            Timestamp::new(start.as_second() + offset.rem_euclid(span), nanos).unwrap()
        })
        .collect();
    for transition in tz.following(start).take_while(|t| t.timestamp() < end) {
        for seconds in [-1, 0, 1, 600, 900, 1800, 2700, 3599, 3600, 5400] {
            instants.push(transition.timestamp() + SignedDuration::from_secs(seconds));
        }
        instants.push(transition.timestamp() - just_before);
    }
    for probe in instants.into_iter().filter(|&p| p >= start && p < end) {
        let want = expected.iter().find(|&&t| t > probe);
        let next = s.next_after(probe);
        match want {
            Some(want) => assert_eq!(next, Some(*want), "{expr:?} in {zone} after {probe}"),
            None => assert!(
                next.is_none_or(|n| n > end),
                "{expr:?} in {zone} after {probe}: {next:?}"
            ),
        }
    }
}

fn item(def: Def, values: BoxedStrategy<u8>) -> impl Strategy<Value = Item> {
    let span = def.star_max - def.min + 1;
    prop_oneof![
        3 => Just(Item::Star),
        2 => (1..=span).prop_map(Item::StarStep),
        3 => values.clone().prop_map(Item::Value),
        2 => (values.clone(), values.clone()).prop_map(|(a, b)| Item::Range(a.min(b), a.max(b))),
        1 => (values.clone(), values.clone(), 1..=span)
            .prop_map(|(a, b, n)| Item::RangeStep(a.min(b), a.max(b), n)),
        1 => (values, 1..=span).prop_map(|(a, n)| Item::ValueStep(a, n)),
    ]
}

/// Only values and plain ranges: what makes a time field fixed.
fn fixed_item(values: BoxedStrategy<u8>) -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => values.clone().prop_map(Item::Value),
        1 => (values.clone(), values).prop_map(|(a, b)| Item::Range(a.min(b), a.max(b))),
    ]
}

fn field_of(
    def: Def,
    items: impl Strategy<Value = Vec<Item>>,
) -> impl Strategy<Value = FieldModel> {
    (items, any::<bool>(), 0..4u8).prop_map(move |(items, question, names)| FieldModel {
        def,
        items,
        // `?` stands for `*` in the day fields only.
        question: question && matches!(def.max, 31 | 7),
        names,
    })
}

fn field(def: Def, values: BoxedStrategy<u8>, star_weight: u32) -> BoxedStrategy<FieldModel> {
    let items = prop_oneof![
        star_weight => Just(vec![Item::Star]),
        4 => prop::collection::vec(item(def, values), 1..=3),
    ];
    field_of(def, items).boxed()
}

/// Items with a step but no `*`: wildcard without looking like one.
fn stepped_item(def: Def, values: BoxedStrategy<u8>) -> impl Strategy<Value = Item> {
    let span = def.star_max - def.min + 1;
    prop_oneof![
        1 => values.clone().prop_map(Item::Value),
        2 => (values.clone(), values.clone(), 1..=span)
            .prop_map(|(a, b, n)| Item::RangeStep(a.min(b), a.max(b), n)),
        2 => (values, 1..=span).prop_map(|(a, n)| Item::ValueStep(a, n)),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Fixed,
    Stepped,
    Any,
}

fn time_field(def: Def, values: BoxedStrategy<u8>, mode: Mode) -> BoxedStrategy<FieldModel> {
    match mode {
        Mode::Fixed => field_of(def, prop::collection::vec(fixed_item(values), 1..=3)).boxed(),
        Mode::Stepped => {
            field_of(def, prop::collection::vec(stepped_item(def, values), 1..=2)).boxed()
        }
        Mode::Any => field(def, values, 1),
    }
}

fn values(def: Def) -> BoxedStrategy<u8> {
    (def.min..=def.max).boxed()
}

/// Fixed-time models (the DST policy differs), models whose time fields have steps but no `*`
/// (wildcard by the policy, yet easy to take for fixed), and anything.
fn model(six_fields: bool) -> impl Strategy<Value = Model> {
    prop_oneof![2 => Just(Mode::Fixed), 1 => Just(Mode::Stepped), 2 => Just(Mode::Any)]
        .prop_flat_map(move |mode| {
            // Hours and minutes near DST transitions (midnight, 01:00-03:45) come up more often.
            let hours = prop_oneof![
                values(HOUR_DEF),
                prop::sample::select(vec![0u8, 1, 2, 3, 23])
            ]
            .boxed();
            let minutes = prop_oneof![
                values(MINUTE_DEF),
                prop::sample::select(vec![0u8, 15, 30, 45])
            ]
            .boxed();
            let second = if six_fields {
                let seconds = prop_oneof![values(SECOND_DEF), Just(0u8)].boxed();
                time_field(SECOND_DEF, seconds, mode).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            (
                second,
                time_field(MINUTE_DEF, minutes, mode),
                time_field(HOUR_DEF, hours, mode),
                field(DOM_DEF, values(DOM_DEF), 12),
                field(MONTH_DEF, values(MONTH_DEF), 12),
                field(DOW_DEF, values(DOW_DEF), 8),
            )
                .prop_map(|(second, minute, hour, dom, month, dow)| Model {
                    second,
                    minute,
                    hour,
                    dom,
                    month,
                    dow,
                })
        })
}

/// A window start near one of the zone's transitions in 2025-2028, or anywhere in 2026 for a
/// zone without transitions.
fn window_start(zone: &str, pick: usize, before_seconds: i64) -> Timestamp {
    let tz = TimeZone::get(zone).unwrap();
    let transitions: Vec<Timestamp> = tz
        .following(ts("2025-01-01T00:00:00Z"))
        .take_while(|t| t.timestamp() < ts("2029-01-01T00:00:00Z"))
        .map(|t| t.timestamp())
        .collect();
    let base = if transitions.is_empty() {
        ts("2026-01-01T00:00:00Z") + SignedDuration::from_secs((pick as i64 % 365) * 86_400)
    } else {
        transitions[pick % transitions.len()]
    };
    Timestamp::from_second(base.as_second() - before_seconds).unwrap()
}

fn probes() -> impl Strategy<Value = Vec<(i64, i32)>> {
    prop::collection::vec(
        (any::<i64>(), prop_oneof![Just(0i32), 0..1_000_000_000i32]),
        8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// 5-field schedules over three days around a transition.
    #[test]
    fn five_fields_match_the_oracle_around_transitions(
        model in model(false),
        zone in prop::sample::select(ZONES.to_vec()),
        pick in any::<usize>(),
        before in 0..2 * 86_400i64,
        probes in probes(),
    ) {
        let start = window_start(zone, pick, before);
        let end = start + SignedDuration::from_hours(72);
        check_against_oracle(&model, zone, start, end, &probes);
    }

    /// 6-field schedules over eight hours around a transition.
    #[test]
    fn six_fields_match_the_oracle_around_transitions(
        model in model(true),
        zone in prop::sample::select(ZONES.to_vec()),
        pick in any::<usize>(),
        before in 0..6 * 3600i64,
        probes in probes(),
    ) {
        let start = window_start(zone, pick, before);
        let end = start + SignedDuration::from_hours(8);
        check_against_oracle(&model, zone, start, end, &probes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// 5-field schedules over all of 2026, minute by minute.
    #[test]
    fn five_fields_match_the_oracle_for_a_year(
        model in model(false),
        zone in prop::sample::select(ZONES.to_vec()),
        probes in probes(),
    ) {
        check_against_oracle(
            &model,
            zone,
            ts("2025-12-31T12:00:00Z"),
            ts("2027-01-01T12:00:00Z"),
            &probes,
        );
    }
}

/// Hand-picked schedules in every zone over a whole year, against the oracle.
#[test]
fn chosen_schedules_match_the_oracle_for_a_year() {
    let exprs = [
        "30 2 * * *",
        "30 1 * * *",
        "0 * * * *",
        "*/15 * * * *",
        "15,45 0-3 * * *",
        "*/7 1-3 * * 0",
        "0 0 * * *",
        "45 2 1-7 * 0",
    ];
    let probes: Vec<(i64, i32)> = (0..16)
        .map(|i| (i * 1_972_331, (i as i32) * 61_000_000))
        .collect();
    for zone in ZONES {
        for expr in exprs {
            let model = parse_model(expr);
            assert_eq!(model.render(), expr);
            check_against_oracle(
                &model,
                zone,
                ts("2025-12-31T12:00:00Z"),
                ts("2027-01-01T12:00:00Z"),
                &probes,
            );
        }
    }
}

/// The historical oddities of a few zones, against the oracle.
#[test]
fn historical_transitions_match_the_oracle() {
    for (zone, start, hours) in [
        ("Pacific/Apia", "2011-12-27T00:00:00Z", 24 * 5),
        // British Double Summer Time: +02 in the summers of the 1940s.
        ("Europe/London", "1947-03-14T00:00:00Z", 24 * 60),
        ("Europe/London", "1947-08-08T00:00:00Z", 24 * 100),
        // Troll station: +00 to +02 and back.
        ("Antarctica/Troll", "2026-03-27T00:00:00Z", 24 * 4),
        ("Antarctica/Troll", "2026-10-23T00:00:00Z", 24 * 4),
        // Lord Howe's one-hour shifts before 1985.
        ("Australia/Lord_Howe", "1981-02-27T00:00:00Z", 24 * 4),
    ] {
        let start = ts(start);
        let end = start + SignedDuration::from_hours(hours);
        for expr in [
            "30 2 * * *",
            "0 * * * *",
            "*/20 * * * *",
            "15,45 0-3 * * *",
            "0 0 * * *",
            "0 9 * * *",
        ] {
            check_against_oracle(
                &parse_model(expr),
                zone,
                start,
                end,
                &[(1, 0), (3601, 5), (86_399, 0)],
            );
        }
    }
}

/// A model for the simple expressions written out in tests (numbers, `*`, ranges, lists).
fn parse_model(expr: &str) -> Model {
    let parse = |text: &str, def: Def| FieldModel {
        def,
        question: false,
        names: 0,
        items: text
            .split(',')
            .map(|item| match item.split_once('/') {
                Some(("*", n)) => Item::StarStep(n.parse().unwrap()),
                Some((a, n)) => Item::ValueStep(a.parse().unwrap(), n.parse().unwrap()),
                None if item == "*" => Item::Star,
                None => match item.split_once('-') {
                    Some((a, b)) => Item::Range(a.parse().unwrap(), b.parse().unwrap()),
                    None => Item::Value(item.parse().unwrap()),
                },
            })
            .collect(),
    };
    let f: Vec<&str> = expr.split(' ').collect();
    assert_eq!(f.len(), 5, "{expr}");
    Model {
        second: None,
        minute: parse(f[0], MINUTE_DEF),
        hour: parse(f[1], HOUR_DEF),
        dom: parse(f[2], DOM_DEF),
        month: parse(f[3], MONTH_DEF),
        dow: parse(f[4], DOW_DEF),
    }
}
