//! Property tests of every decoder of outside data in the library: arbitrary input never
//! panics, and a refusal is a typed error that names the bad part.
//!
//! The case count is proptest's: 256 by default (CI), `PROPTEST_CASES=100000` for a long run
//! (docs/operations.md). Each property prints how many cases it tried.

use crate::broker::keys::SCHEMA_VERSION;
use crate::broker::message::Envelope;
use crate::broker::message::READABLE_VERSIONS;
use crate::schedule::{CronErrorPart, CronSchedule};
use crate::{ErrorKind, units};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;

/// Run `property` on `strategy`'s values with proptest's configured case count; print the
/// count tried.
pub(crate) fn check<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let tried = Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        // Shrunk failures are printed; the regressions file is not needed for pure decoders.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        tried.set(tried.get() + 1);
        property(value)
    });
    println!("{name}: {} cases", tried.get());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Any text, weighted toward the characters the formats use.
fn text(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            proptest::sample::select(alphabet.chars().collect::<Vec<_>>()),
            0..max
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// JSON values of any shape, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a job hash's `data` field may hold: raw bytes, or an object with the envelope's
/// fields (and others), each of any type.
fn envelope_data() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("v"),
        Just("id"),
        Just("queue"),
        Just("kind"),
        Just("payload"),
        Just("timeout_ms"),
        Just("meta"),
        Just("other"),
    ];
    let value = prop_oneof![
        3 => json(),
        1 => Just(serde_json::Value::from(SCHEMA_VERSION)),
        1 => "[a-z]{1,8}".prop_map(serde_json::Value::from),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::btree_map(field, value, 0..8).prop_map(|fields| {
            let object: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            serde_json::to_vec(&object).unwrap()
        }),
    ]
}

#[test]
fn job_envelopes_from_redis_decode_or_say_what_is_wrong() {
    check("job envelope", envelope_data(), |data| {
        match Envelope::decode(&data, "j1", "q") {
            Ok(envelope) => {
                prop_assert!(READABLE_VERSIONS.contains(&envelope.v));
                prop_assert_eq!((envelope.id.as_str(), envelope.queue.as_str()), ("j1", "q"));
                let again = Envelope::decode(envelope.encode().as_bytes(), "j1", "q");
                prop_assert_eq!(again.ok(), Some(envelope));
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
                // The message says which part; serde's cause names the field or position.
                let text = e.to_string();
                prop_assert!(
                    [
                        "no data",
                        "not a tickq job envelope",
                        "version",
                        "does not decode"
                    ]
                    .iter()
                    .any(|part| text.contains(part)),
                    "{}",
                    text
                );
                if text.contains("does not decode") {
                    prop_assert!(
                        text.contains("field") || text.contains("line") || text.contains("type"),
                        "{}",
                        text
                    );
                }
            }
        }
        Ok(())
    });
}

#[test]
fn durations_parse_or_name_the_text() {
    check("duration", text("0123456789smhd ", 12), |input| {
        match units::duration(&input) {
            Ok(d) => {
                // What is read back is what was written.
                prop_assert_eq!(units::duration(&units::format_duration(d)).ok(), Some(d));
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                let trimmed = input.trim();
                prop_assert!(
                    e.message().contains(&format!("{trimmed:?}"))
                        || (trimmed.is_empty() && e.message().contains("empty duration")),
                    "{}",
                    e
                );
            }
        }
        Ok(())
    });
}

#[test]
fn rates_parse_or_name_the_text() {
    check("rate", text("0123456789/smhd ", 12), |input| {
        if let Err(e) = units::rate(&input) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            prop_assert!(e.message().contains(&format!("{input:?}")), "{}", e);
        }
        Ok(())
    });
}

#[test]
fn times_parse_or_name_the_text() {
    check("time", text("0123456789-:TZ+.", 32), |input| {
        match units::time(&input) {
            Ok(t) => {
                let ms = t.as_millisecond().to_string();
                prop_assert_eq!(
                    units::time(&ms).ok().map(|t| t.as_millisecond()),
                    Some(t.as_millisecond())
                );
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert!(
                    e.message().contains(&format!("{:?}", input.trim())),
                    "{}",
                    e
                );
            }
        }
        Ok(())
    });
}

/// Cron expressions: any text, and five to seven fields of cron-like tokens.
fn cron_expr() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        text("0123456789*/,-?LW#", 8),
        "[0-9]{1,2}(-[0-9]{1,2})?(/[0-9]{1,2})?",
        Just("*".to_owned()),
        "(MON|TUE|SUN|JAN|DEC|mon|xyz)(-(FRI|SAT))?",
    ];
    prop_oneof![
        any::<String>(),
        "@(every|daily|hourly|weekly|monthly|yearly|annually|midnight|reboot|x)( [0-9a-z ]{0,8})?",
        proptest::collection::vec(field, 1..8).prop_map(|f| f.join(" ")),
    ]
}

fn zone() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("UTC".to_owned()),
        1 => Just("America/New_York".to_owned()),
        1 => Just("Asia/Shanghai".to_owned()),
        1 => any::<String>(),
    ]
}

#[test]
fn cron_expressions_parse_or_name_the_bad_part() {
    let after = jiff::Timestamp::from_second(1_790_000_000).unwrap();
    check("cron expression", (cron_expr(), zone()), |(expr, tz)| {
        match CronSchedule::parse(&expr, &tz) {
            Ok(schedule) => {
                // A schedule that parses can be evaluated: the next fires come in order.
                let fires: Vec<_> = schedule.iter_after(after).take(3).collect();
                prop_assert!(fires.windows(2).all(|w| w[0] < w[1]), "{:?}", fires);
                prop_assert!(fires.iter().all(|t| *t > after));
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.contains(&format!("{:?}", e.expr())), "{}", shown);
                match e.part() {
                    CronErrorPart::TimeZone => prop_assert!(tz.contains(e.text()), "{}", shown),
                    CronErrorPart::FieldCount => {}
                    // Several words of the expression are named with single spaces.
                    _ => {
                        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                        prop_assert!(
                            words(&expr).contains(&words(e.text())),
                            "{:?} in {:?}",
                            e.text(),
                            expr
                        )
                    }
                }
            }
        }
        Ok(())
    });
}

/// Redis URLs: any text, and scheme-like prefixes with anything after them.
fn redis_url() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("redis://"),
        Just("rediss://"),
        Just("redis+unix://"),
        Just("unix://"),
        Just("valkey://"),
        Just("redis-cluster://"),
        Just("rediss-cluster://"),
        Just("redis-sentinel://"),
        Just("rediss-sentinel://"),
        Just("http://"),
        Just(""),
    ];
    prop_oneof![
        any::<String>(),
        (scheme, text("abc:@/,.?#[]0123456789%", 40)).prop_map(|(s, rest)| format!("{s}{rest}")),
    ]
}

/// Text of the URL help, which an error repeats whatever the URL was.
const URL_HELP_WORDS: &str = "expected redis://[user:pass@]host:port[/db], rediss://..., \
    redis+unix:///path/to/redis.sock, for a Cluster redis-cluster://[user:pass@]host:port,\
    host:port,... (rediss-cluster:// for TLS, or a comma-separated list of redis:// URLs), or \
    for Sentinel redis-sentinel://[user:pass@]host:port[,host:port...]/MASTER_NAME[/db] \
    (rediss-sentinel:// for TLS) Redis URL did not parse - InvalidClientConfig";

#[test]
fn redis_urls_parse_or_say_what_is_expected() {
    check("redis url", redis_url(), |url| {
        if let Err(e) = crate::validate_redis_url(&url) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            prop_assert!(e.message().contains("URL"), "{}", e);
            // A password in the URL is never repeated.
            if let Some((_, rest)) = url.split_once("://")
                && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
                && let Some((_, password)) = userinfo.split_once(':')
                && password.len() >= 4
                && !url.replacen(password, "", 1).contains(password)
                && !URL_HELP_WORDS.contains(password)
            {
                prop_assert!(!e.message().contains(password), "{}", e);
            }
        }
        Ok(())
    });
}

#[test]
fn payloads_read_by_handlers_decode_or_say_why() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code, reason = "only decoding is tested")]
    struct Email {
        to: String,
        attempts: u32,
    }
    check("payload", json(), |payload| {
        let job = crate::handler::Job {
            contents: std::sync::Arc::new(crate::handler::Contents {
                id: "j".into(),
                queue: "q".into(),
                kind: "email".into(),
                payload,
                meta: Default::default(),
            }),
            attempt: 1,
            fence: 1,
            due_at: None,
            stop: Default::default(),
            reporter: None,
        };
        if let Err(e) = job.payload_as::<Email>() {
            // The job goes to dead (it cannot succeed on a retry) with serde's reason.
            prop_assert_eq!(e.action, crate::FailAction::Kill);
            prop_assert!(
                e.message.starts_with("payload does not decode: "),
                "{}",
                e.message
            );
            prop_assert!(e.message.len() > "payload does not decode: ".len());
        }
        Ok(())
    });
}
