//! Cron expressions: parsing and next fire times (the syntax and DST policy are on
//! [`CronSchedule`]).

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The latest civil year searched. Past it, [`CronSchedule::next_after`] returns `None`.
const MAX_YEAR: i32 = 9999;

/// How far back [`CronSchedule::next_after`] looks for a fold that may still be repeating the
/// wall clock. A fold is never longer than the largest possible change of UTC offset, which
/// tzdb keeps well under this.
const FOLD_LOOKBACK_SECONDS: i64 = 3 * 86_400;

/// A parsed cron schedule in an IANA time zone.
///
/// # Syntax
///
/// A schedule is one of:
///
/// - 5 fields, `minute hour day-of-month month day-of-week` (fires at second 0);
/// - 6 fields, `second minute hour day-of-month month day-of-week`;
/// - a macro: `@yearly` (= `@annually`, `0 0 1 1 *`), `@monthly` (`0 0 1 * *`),
///   `@weekly` (`0 0 * * 0`), `@daily` (= `@midnight`, `0 0 * * *`), `@hourly` (`0 * * * *`);
/// - `@every DURATION`, where DURATION is one or more `<number><unit>` parts with the units
///   `d`, `h`, `m`, `s`, largest first, each at most once: `30s`, `5m`, `1h30m`, `1d`.
///
/// | field        | values                        |
/// | ------------ | ----------------------------- |
/// | second       | 0-59                          |
/// | minute       | 0-59                          |
/// | hour         | 0-23                          |
/// | day-of-month | 1-31                          |
/// | month        | 1-12 or `JAN`-`DEC`           |
/// | day-of-week  | 0-7 or `SUN`-`SAT` (0 and 7 are Sunday) |
///
/// Each field is a comma-separated list of items. An item is `*`, a value `a`, a range `a-b`,
/// or one of those followed by a step: `*/n` (from the field's first value), `a-b/n`, `a/n`
/// (from `a` to the field's last value). Names are case-insensitive. `?` means `*` in the
/// day-of-month and day-of-week fields. For `*` and `a/n` the day-of-week field ends at 6
/// (Saturday), so `*/2` there is Sunday, Tuesday, Thursday, Saturday. A step must be between 1
/// and the number of values in the field.
///
/// **Day of month and day of week** follow Vixie/ISC cron: if either field starts with `*` or
/// `?`, a day must match both fields; otherwise (both restricted) a day matches if it matches
/// *either*. So `0 0 13 * FRI` fires on every 13th and on every Friday, while `0 0 * * FRI`
/// fires on Fridays only. Like ISC cron, a field that starts with `*` counts as unrestricted
/// even with a step: `0 0 */2 * MON` fires on Mondays that fall on an odd day of the month.
///
/// A schedule that can never fire (`0 0 30 2 *`) parses, and [`CronSchedule::next_after`]
/// returns `None` for it.
///
/// # Time zones and daylight saving time
///
/// A cron schedule is evaluated on the wall clock of its IANA time zone, with the zone's rules
/// from the tz database bundled into tickq (jiff's `tzdb-bundle-always`), not the system's:
/// nodes with different system tzdata versions still compute the same ticks. A tick's identity
/// is its UTC instant: the same schedule, zone and tickq version give the same instants on
/// every node, and two civil times that resolve to the same instant are one tick.
///
/// The default policy is modelled on ISC cron. It depends on whether a schedule is
/// **fixed-time** or **wildcard**:
///
/// - *fixed-time*: the second (6 fields only), minute and hour fields each name specific
///   values: numbers, lists or plain ranges, such as `30 2 * * *`, `0 9,17 * * MON-FRI` or
///   `@daily`;
/// - *wildcard*: at least one of those fields contains `*` or a step (`/`), such as
///   `0 * * * *`, `*/15 * * * *`, `*/10 2 * * *`, `0 1-23/2 * * *`, `@hourly`, or
///   `* 30 2 * * *` (6 fields). (ISC cron only looks at whether the minute or hour field
///   starts with `*`; here a step anywhere also makes a schedule wildcard.)
///
/// When the clocks **spring forward** (a gap: in America/New_York on 2026-03-08 the wall clock
/// goes from 01:59:59 EST to 03:00:00 EDT), civil times in the gap do not exist:
///
/// - a fixed-time schedule with a fire time in the gap fires once, at the first instant after
///   the gap (the transition instant: 03:00 EDT). `30 2 * * *` fires at 03:00 EDT that day.
///   Several fire times in the same gap, and a fire time right at its end, are still one
///   tick: `0,30 2,3 * * *` fires at 03:00 EDT once, then at 03:30 EDT;
/// - a wildcard schedule simply has no ticks in the gap; it goes on with the new wall clock.
///   `0 * * * *` fires at 01:00 EST and then 03:00 EDT.
///
/// When the clocks **fall back** (a fold: on 2026-11-01 the wall clock shows 01:00 to 01:59:59
/// first in EDT, then again in EST), civil times in the fold happen twice:
///
/// - a fixed-time schedule fires once, at the first occurrence. `30 1 * * *` fires at 01:30
///   EDT only. More precisely, a fixed-time schedule never fires at a civil time that is not
///   later than a civil time the wall clock already showed;
/// - a wildcard schedule fires at both occurrences. `0 * * * *` fires at 01:00 EDT and at
///   01:00 EST; `*/30 * * * *` fires four times in that repeated hour.
///
/// The same rules apply to every transition: 30-minute shifts (Australia/Lord_Howe, where
/// 02:00-02:29 is skipped in October and 01:30-01:59 repeats in April), transitions at
/// midnight (America/Santiago, where 00:00-00:59 does not exist on 2026-09-06, so `@daily`
/// fires at 01:00 that day), and changes of a zone's standard offset, even by a whole day
/// (Pacific/Apia skipped 2011-12-30). Zones without DST (Asia/Kolkata, UTC) have no gaps or
/// folds.
///
/// `@every` schedules ignore the time zone: `@every D` fires at every instant whose Unix time
/// in seconds is a multiple of D, so every node computes the same ticks in any zone and DST
/// never applies. `@every 1d` fires at 00:00 UTC, and `@every 7d` on Thursdays (1970-01-01 was
/// a Thursday); use `@daily` or `@weekly` for the local midnight.
///
/// Fire instants are whole seconds. [`CronSchedule::next_after`] returns the first fire instant
/// strictly after the given one, so successive calls are strictly increasing, including across
/// a fold.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    expr: String,
    timezone: String,
    tz: TimeZone,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Cron(Spec),
    /// Fires at every Unix second that is a multiple of the period.
    Every {
        period: i64,
    },
}

/// The fields of a cron expression as bitsets: bit `v` is set if value `v` matches.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days_of_month: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, Sunday is 0.
    days_of_week: u64,
    /// Day-of-month or day-of-week starts with `*` or `?`: a day must match both fields
    /// (ISC cron's `DOM_STAR`/`DOW_STAR`).
    days_and: bool,
    /// Second, minute and hour all name specific values (see the DST policy).
    fixed_time: bool,
    /// No day can ever match (such as February 30).
    never: bool,
}

impl CronSchedule {
    /// Parses a cron expression (5 or 6 fields, a macro, or `@every DURATION`) to be evaluated
    /// in the IANA time zone `timezone`, such as `"Europe/Paris"` or `"UTC"`.
    pub fn parse(expr: &str, timezone: &str) -> Result<CronSchedule, CronError> {
        let kind = parse_kind(expr)?;
        let tz = TimeZone::get(timezone).map_err(|_| {
            let mut message = format!(
                "unknown time zone {timezone:?}; expected an IANA name such as \
                 \"Europe/Paris\" or \"UTC\""
            );
            if jiff::tz::db().is_definitively_empty() {
                message.push_str(
                    " (no time zone database was found on this machine: install tzdata \
                     or set TZDIR)",
                );
            }
            CronError::new(expr, CronErrorPart::TimeZone, timezone, message)
        })?;
        Ok(CronSchedule {
            expr: expr.to_string(),
            timezone: timezone.to_string(),
            tz,
            kind,
        })
    }

    /// The first fire instant strictly after `after`, or `None` if there is none (the schedule
    /// can never fire, such as `0 0 30 2 *`, or the next fire would be after the year 9999).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        // Fire instants are whole seconds, so the first candidate is the next whole second.
        let mut lo = after.as_second();
        if after.subsec_nanosecond() < 0 {
            lo -= 1;
        }
        let lo = lo.checked_add(1)?;
        let next = match &self.kind {
            Kind::Every { period } => {
                let rem = lo.rem_euclid(*period);
                if rem == 0 {
                    lo
                } else {
                    lo.checked_add(period - rem)?
                }
            }
            Kind::Cron(spec) => self.next_cron(spec, lo)?,
        };
        Timestamp::from_second(next).ok()
    }

    /// An iterator over the fire instants strictly after `after`, in increasing order.
    pub fn iter_after(&self, after: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        std::iter::successors(self.next_after(after), move |&t| self.next_after(t))
    }

    /// The expression as given to [`CronSchedule::parse`].
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone name as given to [`CronSchedule::parse`].
    pub fn timezone(&self) -> &str {
        &self.timezone
    }

    /// The first fire instant, in Unix seconds, at or after `lo` (Unix seconds).
    ///
    /// The zone's timeline is cut at its transitions into segments of constant UTC offset.
    /// Within a segment, civil time and UTC move together, so the next fire time in a segment
    /// is the next matching civil time before the segment's end. Each transition in between
    /// is where the DST policy applies: a gap may fire a fixed-time schedule at its end, and
    /// after a fold a fixed-time schedule skips the civil times the wall clock already showed.
    fn next_cron(&self, spec: &Spec, lo: i64) -> Option<i64> {
        if spec.never {
            return None;
        }
        // The latest civil time (local seconds) the wall clock showed before the current
        // segment. A fixed-time schedule only fires at civil times later than this.
        let mut shown = i64::MIN;
        if spec.fixed_time {
            for transition in self
                .tz
                .preceding(Timestamp::from_second(lo.checked_add(1)?).ok()?)
            {
                let at = transition.timestamp().as_second();
                if at < lo - FOLD_LOOKBACK_SECONDS {
                    break;
                }
                let before = self.offset_at(at - 1)?;
                shown = shown.max(at - 1 + before);
                let after = i64::from(transition.offset().seconds());
                // A gap that ends exactly at `lo` fires there (see the gap rule below).
                if at == lo
                    && after > before
                    && spec.first_match(at + before, Some(at + after)).is_some()
                {
                    return Some(lo);
                }
            }
        }

        let mut start = lo;
        loop {
            let offset = self.offset_at(start)?;
            let transition = self
                .tz
                .following(Timestamp::from_second(start).ok()?)
                .next()
                .map(|t| (t.timestamp().as_second(), i64::from(t.offset().seconds())));
            let from = if spec.fixed_time {
                (start + offset).max(shown.saturating_add(1))
            } else {
                start + offset
            };
            let until = transition.map(|(at, _)| at + offset);
            if let Some(local) = spec.first_match(from, until) {
                return Some(local - offset);
            }
            let (at, next_offset) = transition?;
            if spec.fixed_time {
                // Gap rule: the civil times [at + offset, at + next_offset) never show on the
                // wall clock; if the schedule names one of them, it fires once, at the first
                // instant after the gap.
                if next_offset > offset
                    && spec
                        .first_match(at + offset, Some(at + next_offset))
                        .is_some()
                {
                    return Some(at);
                }
                shown = shown.max(at - 1 + offset);
            }
            start = at;
        }
    }

    fn offset_at(&self, unix_second: i64) -> Option<i64> {
        let ts = Timestamp::from_second(unix_second).ok()?;
        Some(i64::from(self.tz.to_offset(ts).seconds()))
    }
}

impl Spec {
    /// The first civil time (local seconds: seconds since 1970-01-01T00:00:00 on the wall
    /// clock) at or after `from` and before `until` that matches all fields.
    ///
    /// Jumps field by field (month, then day, hour, minute, second), so a sparse schedule
    /// like `0 0 29 2 *` takes a few dozen steps per year searched, never one per minute.
    fn first_match(&self, from: i64, until: Option<i64>) -> Option<i64> {
        let until = until.map(Civil::from_local);
        let mut c = Civil::from_local(from);
        loop {
            if c.year > MAX_YEAR || until.is_some_and(|u| c >= u) {
                return None;
            }
            if !has(self.months, c.month) {
                c = match next_bit(self.months, c.month + 1) {
                    Some(month) => Civil::midnight(c.year, month, 1),
                    None => Civil::midnight(c.year + 1, next_bit(self.months, 1)?, 1),
                };
                continue;
            }
            if !self.day_matches(&c) {
                c = c.next_day();
                continue;
            }
            if !has(self.hours, c.hour) {
                match next_bit(self.hours, c.hour + 1) {
                    Some(hour) => (c.hour, c.minute, c.second) = (hour, 0, 0),
                    None => c = c.next_day(),
                }
                continue;
            }
            if !has(self.minutes, c.minute) {
                match next_bit(self.minutes, c.minute + 1) {
                    Some(minute) => (c.minute, c.second) = (minute, 0),
                    None => c = c.next_hour(),
                }
                continue;
            }
            if !has(self.seconds, c.second) {
                match next_bit(self.seconds, c.second + 1) {
                    Some(second) => c.second = second,
                    None => c = c.next_minute(),
                }
                continue;
            }
            return Some(c.to_local());
        }
    }

    fn day_matches(&self, c: &Civil) -> bool {
        let dom = has(self.days_of_month, c.day);
        let dow = has(self.days_of_week, c.weekday());
        if self.days_and {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn has(bits: u64, value: u8) -> bool {
    value < 64 && bits & (1 << value) != 0
}

/// The smallest set bit at or above `from`.
fn next_bit(bits: u64, from: u8) -> Option<u8> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    (rest != 0).then(|| from + rest.trailing_zeros() as u8)
}

/// A proleptic Gregorian civil date and time; field order makes the derived `Ord`
/// chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Civil {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Civil {
    fn midnight(year: i32, month: u8, day: u8) -> Civil {
        Civil {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
        }
    }

    fn from_local(local: i64) -> Civil {
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            // Local seconds outside ±i32 years only come from out-of-range timestamps,
            // which jiff never produces; clamping keeps the year check meaningful.
            year: year.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        }
    }

    fn to_local(self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Sunday is 0.
    fn weekday(&self) -> u8 {
        // 1970-01-01 was a Thursday.
        (days_from_civil(i64::from(self.year), self.month, self.day) + 4).rem_euclid(7) as u8
    }

    fn next_day(self) -> Civil {
        if self.day < days_in_month(self.year, self.month) {
            Civil::midnight(self.year, self.month, self.day + 1)
        } else if self.month < 12 {
            Civil::midnight(self.year, self.month + 1, 1)
        } else {
            Civil::midnight(self.year + 1, 1, 1)
        }
    }

    fn next_hour(self) -> Civil {
        if self.hour < 23 {
            Civil {
                hour: self.hour + 1,
                minute: 0,
                second: 0,
                ..self
            }
        } else {
            self.next_day()
        }
    }

    fn next_minute(self) -> Civil {
        if self.minute < 59 {
            Civil {
                minute: self.minute + 1,
                second: 0,
                ..self
            }
        } else {
            self.next_hour()
        }
    }
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u8;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct FieldDef {
    name: &'static str,
    min: u8,
    max: u8,
    /// Where `*` and `a/n` end; only differs from `max` for day-of-week (6, not 7).
    star_max: u8,
    names: &'static [&'static str],
    question_mark: bool,
}

const SECOND: FieldDef = FieldDef {
    name: "second",
    min: 0,
    max: 59,
    star_max: 59,
    names: &[],
    question_mark: false,
};
const MINUTE: FieldDef = FieldDef {
    name: "minute",
    ..SECOND
};
const HOUR: FieldDef = FieldDef {
    name: "hour",
    max: 23,
    star_max: 23,
    ..SECOND
};
const DAY_OF_MONTH: FieldDef = FieldDef {
    name: "day-of-month",
    min: 1,
    max: 31,
    star_max: 31,
    names: &[],
    question_mark: true,
};
const MONTH: FieldDef = FieldDef {
    name: "month",
    min: 1,
    max: 12,
    star_max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    question_mark: false,
};
const DAY_OF_WEEK: FieldDef = FieldDef {
    name: "day-of-week",
    min: 0,
    max: 7,
    star_max: 6,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    question_mark: true,
};

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

struct Field {
    bits: u64,
    /// Starts with `*` or `?` (ISC cron's notion of an unrestricted day field).
    starts_with_star: bool,
    /// Contains `*`, `?` or a step (the DST policy's notion of a wildcard time field).
    wildcard: bool,
}

fn parse_kind(expr: &str) -> Result<Kind, CronError> {
    let tokens: Vec<&str> = expr.split_whitespace().collect();
    match tokens.first() {
        Some(first) if first.starts_with('@') => {
            if first.eq_ignore_ascii_case("@every") {
                return parse_every(expr, &tokens[1..]);
            }
            let Some((_, expansion)) = MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(first))
            else {
                return Err(CronError::new(
                    expr,
                    CronErrorPart::Macro,
                    *first,
                    format!(
                        "unknown macro {first:?}; expected @yearly, @annually, @monthly, \
                         @weekly, @daily, @midnight, @hourly or @every DURATION"
                    ),
                ));
            };
            if tokens.len() > 1 {
                return Err(CronError::new(
                    expr,
                    CronErrorPart::Macro,
                    *first,
                    format!(
                        "{first} takes no fields, found {:?} after it",
                        tokens[1..].join(" ")
                    ),
                ));
            }
            let fields: Vec<&str> = expansion.split(' ').collect();
            parse_fields(expr, &fields)
        }
        _ => parse_fields(expr, &tokens),
    }
}

fn parse_fields(expr: &str, fields: &[&str]) -> Result<Kind, CronError> {
    let (defs, seconds): (&[&FieldDef], Option<&str>) = match fields.len() {
        5 => (&[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK], None),
        6 => (
            &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
            Some(fields[0]),
        ),
        n => {
            return Err(CronError::new(
                expr,
                CronErrorPart::FieldCount,
                expr,
                format!(
                    "found {n} field{}, expected 5 (minute hour day-of-month month day-of-week) \
                     or 6 (second minute hour day-of-month month day-of-week), or a macro \
                     such as @daily or @every 5m",
                    if n == 1 { "" } else { "s" }
                ),
            ));
        }
    };
    let mut parsed = Vec::with_capacity(6);
    for (i, (text, def)) in fields.iter().zip(defs).enumerate() {
        let field = parse_field(text, def).map_err(|(offending, message)| {
            CronError::new(
                expr,
                CronErrorPart::Field {
                    index: i + 1,
                    name: def.name,
                },
                offending,
                message,
            )
        })?;
        parsed.push(field);
    }
    let [minute, hour, dom, month, dow] = &parsed[parsed.len() - 5..] else {
        unreachable!("five trailing fields were just parsed");
    };
    let second = seconds.map(|_| &parsed[0]);
    let days_and = dom.starts_with_star || dow.starts_with_star;
    let fixed_time = !minute.wildcard && !hour.wildcard && !second.is_some_and(|s| s.wildcard);
    let mut spec = Spec {
        seconds: second.map_or(1, |s| s.bits),
        minutes: minute.bits,
        hours: hour.bits,
        days_of_month: dom.bits,
        months: month.bits,
        days_of_week: dow.bits,
        days_and,
        fixed_time,
        never: false,
    };
    // With "either" semantics any month has every weekday. With "both", every valid
    // (month, day) pair falls on every weekday within a 400-year cycle, so the schedule fires
    // if and only if some selected month has some selected day.
    spec.never = days_and
        && !(1..=12u8).any(|m| {
            let longest = if m == 2 { 29 } else { days_in_month(2001, m) };
            has(spec.months, m) && (1..=longest).any(|d| has(spec.days_of_month, d))
        });
    Ok(Kind::Cron(spec))
}

/// Parses one field; on error returns the offending text and what is wrong with it.
fn parse_field(text: &str, def: &FieldDef) -> Result<Field, (String, String)> {
    let err = |offending: &str, message: String| Err((offending.to_string(), message));
    let mut field = Field {
        bits: 0,
        starts_with_star: text.starts_with('*') || text.starts_with('?'),
        wildcard: false,
    };
    for item in text.split(',') {
        if item.is_empty() {
            return err(text, format!("empty list item in {text:?}"));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        let step = match step {
            None => None,
            Some(s) if s.contains('/') => {
                return err(item, format!("{item:?} has more than one \"/\""));
            }
            Some("") => return err(item, format!("{item:?} is missing the step after \"/\"")),
            Some(s) => {
                let span = u32::from(def.star_max - def.min) + 1;
                let Some(n) = parse_number(s) else {
                    return err(item, format!("step {s:?} in {item:?} is not a number"));
                };
                if n == 0 {
                    return err(
                        item,
                        format!("step 0 in {item:?} is not allowed; use 1 or more"),
                    );
                }
                if n > span {
                    return err(
                        item,
                        format!(
                            "step {n} in {item:?} is larger than the {} values of the field \
                             ({}-{})",
                            span, def.min, def.star_max
                        ),
                    );
                }
                Some(n as u8)
            }
        };
        let (start, end) = if base == "*" || base == "?" {
            if base == "?" && !def.question_mark {
                return err(
                    item,
                    "\"?\" is only allowed in the day-of-month and day-of-week fields".into(),
                );
            }
            field.wildcard = true;
            (def.min, def.star_max)
        } else if base.is_empty() {
            return err(item, format!("{item:?} is missing a value before \"/\""));
        } else if let Some((a, b)) = base.split_once('-') {
            if a.is_empty() {
                return err(item, format!("{base:?} is missing the start of the range"));
            }
            if b.is_empty() {
                return err(item, format!("{base:?} is missing the end of the range"));
            }
            let a = parse_value(a, def)?;
            let b = parse_value(b, def)?;
            if a > b {
                return err(base, format!("range {base:?} is reversed ({a} > {b})"));
            }
            (a, b)
        } else {
            let a = parse_value(base, def)?;
            // `a/n` runs to the end of the field.
            if step.is_some() {
                (a, a.max(def.star_max))
            } else {
                (a, a)
            }
        };
        if step.is_some() {
            field.wildcard = true;
        }
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            // Day-of-week 7 is Sunday, like 0.
            let bit = if def.max == 7 && v == 7 { 0 } else { v };
            field.bits |= 1 << bit;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok(field)
}

fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_value(text: &str, def: &FieldDef) -> Result<u8, (String, String)> {
    if let Some(n) = parse_number(text) {
        if n < u32::from(def.min) || n > u32::from(def.max) {
            return Err((
                text.into(),
                format!("{n} is out of range {}-{}", def.min, def.max),
            ));
        }
        return Ok(n as u8);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than parse_number takes.
        return Err((
            text.into(),
            format!("{text} is out of range {}-{}", def.min, def.max),
        ));
    }
    if let Some(i) = def
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(def.min + i as u8);
    }
    let expected = match def.names {
        [] => format!("a number {}-{}", def.min, def.max),
        names => format!(
            "a number {}-{} or a name {}-{}",
            def.min,
            def.max,
            names[0],
            names[names.len() - 1]
        ),
    };
    let hint = if text.contains(['L', 'W', '#', 'l', 'w']) && def.question_mark {
        " (L, W and # are not supported)"
    } else {
        ""
    };
    Err((text.into(), format!("{text:?} is not {expected}{hint}")))
}

fn parse_every(expr: &str, args: &[&str]) -> Result<Kind, CronError> {
    let usage = "expected a duration such as 30s, 5m, 2h, 1d or 1h30m";
    let duration = match args {
        [duration] => *duration,
        [] => {
            return Err(CronError::new(
                expr,
                CronErrorPart::Every,
                "",
                format!("missing duration; {usage}"),
            ));
        }
        [_, rest @ ..] => {
            let rest = rest.join(" ");
            return Err(CronError::new(
                expr,
                CronErrorPart::Every,
                rest.clone(),
                format!("unexpected {rest:?} after the duration; {usage}"),
            ));
        }
    };
    let bad = |message: String| {
        Err(CronError::new(
            expr,
            CronErrorPart::Every,
            duration,
            message,
        ))
    };
    const UNITS: &[(u8, i64)] = &[(b'd', 86_400), (b'h', 3600), (b'm', 60), (b's', 1)];
    let mut period: i64 = 0;
    // Units must come largest first, each at most once.
    let mut next_unit = 0;
    let mut rest = duration.as_bytes();
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return bad(format!("{duration:?} is not a valid duration; {usage}"));
        }
        let Some(&unit) = rest.get(digits) else {
            return bad(format!(
                "{duration:?} is missing a unit (d, h, m or s) at the end"
            ));
        };
        let unit = unit.to_ascii_lowercase();
        if unit == b'm'
            && rest
                .get(digits + 1)
                .is_some_and(|b| b.eq_ignore_ascii_case(&b's'))
        {
            return bad(format!(
                "{duration:?}: durations below one second are not supported"
            ));
        }
        let Some(i) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return bad(format!("{duration:?} has an unknown unit; {usage}"));
        };
        if i < next_unit {
            return bad(format!(
                "{duration:?}: units must be largest first, each at most once"
            ));
        }
        next_unit = i + 1;
        let value = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|n| n.checked_mul(UNITS[i].1))
            .and_then(|n| n.checked_add(period));
        let Some(value) = value else {
            return bad(format!("{duration:?} is too long"));
        };
        period = value;
        rest = &rest[digits + 1..];
    }
    if period == 0 {
        return bad(format!("{duration:?} must be at least 1s"));
    }
    Ok(Kind::Every { period })
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A cron expression or time zone that could not be parsed.
///
/// Displays as, for example,
/// `bad cron expression "0 25 * * *": field 2 (hour): 25 is out of range 0-23`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad cron expression {expr:?}: {part}{message}")]
pub struct CronError {
    expr: String,
    part: CronErrorPart,
    text: String,
    message: String,
}

/// The part of a cron expression that a [`CronError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CronErrorPart {
    /// One field; `index` counts from 1 in the expression as written (so the hour is field 2
    /// of a 5-field expression and field 3 of a 6-field one).
    Field {
        /// 1-based position of the field.
        index: usize,
        /// `second`, `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
        name: &'static str,
    },
    /// The number of fields.
    FieldCount,
    /// A macro such as `@daily`.
    Macro,
    /// The duration of `@every`.
    Every,
    /// The time zone name.
    TimeZone,
}

impl fmt::Display for CronErrorPart {
    /// The prefix of the message: `field 2 (hour): `, `@every: `, or nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronErrorPart::Field { index, name } => write!(f, "field {index} ({name}): "),
            CronErrorPart::Every => f.write_str("@every: "),
            CronErrorPart::FieldCount | CronErrorPart::Macro | CronErrorPart::TimeZone => Ok(()),
        }
    }
}

impl CronError {
    fn new(expr: &str, part: CronErrorPart, text: impl Into<String>, message: String) -> CronError {
        CronError {
            expr: expr.to_string(),
            part,
            text: text.into(),
            message,
        }
    }

    /// The whole expression.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Which part of the expression is wrong.
    pub fn part(&self) -> CronErrorPart {
        self.part
    }

    /// The offending text: a list item, a value, a macro, a duration or a zone name.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What is wrong, without the expression and the part.
    pub fn reason(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests;
