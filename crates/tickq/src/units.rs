//! The small text formats people type (the command line, the config file, the HTTP API): DUR (`500ms`, `30s`, `5m`, `2h`, `1d`, or a
//! sum like `1h30m`) and TIME (RFC 3339 with an offset, or Unix milliseconds).

use jiff::Timestamp;
use std::time::Duration;

const DUR_HELP: &str = "use a number with a unit: 500ms, 30s, 5m, 2h, 1d (or a sum like 1h30m)";
const TIME_HELP: &str =
    "use RFC 3339 with an offset (2026-11-22T02:00:00+08:00, 2026-11-22T02:00:00Z) or Unix ms";

/// Parse a DUR.
pub fn duration(text: &str) -> crate::Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return Err(crate::Error::invalid(format!("empty duration; {DUR_HELP}")));
    }
    let bad = || crate::Error::invalid(format!("invalid duration {text:?}; {DUR_HELP}"));
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Parse a RATE: `N/DUR` (`50/1s`, `1000/1m`); a bare unit counts one of it (`50/s`).
pub fn rate(text: &str) -> crate::Result<crate::Rate> {
    const HELP: &str = "use JOBS/DUR, e.g. 50/1s, 50/s or 1000/1m";
    let bad = || crate::Error::invalid(format!("invalid rate {text:?}; {HELP}"));
    let (jobs, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let jobs: u32 = jobs.trim().parse().map_err(|_| bad())?;
    let per = per.trim();
    let per = if per.starts_with(|c: char| c.is_ascii_digit()) {
        duration(per).map_err(|e| crate::Error::invalid(format!("invalid rate {text:?}: {e}")))?
    } else {
        duration(&format!("1{per}")).map_err(|_| bad())?
    };
    Ok(crate::Rate::new(jobs, per))
}

/// Format a duration the way [`duration`] reads it, largest units first (`1h30m`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Parse a TIME.
pub fn time(text: &str) -> crate::Result<Timestamp> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = text.parse().map_err(|_| {
            crate::Error::invalid(format!("invalid time {text:?}: Unix ms out of range"))
        })?;
        return Timestamp::from_millisecond(ms)
            .map_err(|e| crate::Error::invalid(format!("invalid time {text:?}: {e}")));
    }
    text.parse::<Timestamp>()
        .map_err(|e| crate::Error::invalid(format!("invalid time {text:?} ({e}); {TIME_HELP}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str| duration(s).unwrap();
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        assert_eq!(ok("1d"), Duration::from_secs(86400));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("0s"), Duration::ZERO);
        for bad in [
            "",
            "5",
            "ms",
            "5x",
            "-5s",
            "5 s",
            "1.5s",
            "s5",
            "5sm",
            "99999999999999999999d",
        ] {
            let err = duration(bad).unwrap_err();
            assert!(err.message().contains("500ms"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn durations_round_trip() {
        for s in [
            "500ms",
            "30s",
            "5m",
            "2h",
            "1d",
            "1h30m",
            "1d2h3m4s5ms",
            "0s",
        ] {
            assert_eq!(format_duration(duration(s).unwrap()), s);
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            time("2026-11-22T02:00:00+08:00").unwrap(),
            "2026-11-21T18:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            time("1700000000000").unwrap().as_millisecond(),
            1_700_000_000_000
        );
        for bad in [
            "",
            "tomorrow",
            "2026-11-22T02:00:00",
            "2026-13-01T00:00:00Z",
            "-5",
        ] {
            assert!(time(bad).is_err(), "{bad:?}");
        }
    }
}
