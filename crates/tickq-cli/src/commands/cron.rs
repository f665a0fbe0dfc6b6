//! `cron ls | add | rm | trigger | pause | resume | next`.
//!
//! Times a person reads are shown on the schedule's own wall clock (RFC 3339 with that zone's
//! offset), next to UTC: a tick is a UTC instant, but "02:00 in Shanghai" is what was asked for.

use crate::config::{CronSpec, CronVerb, Redis};
use crate::output::{self, Table};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tickq::schedule::{CronSchedule, ScheduleInfo, Task};

/// `t` as RFC 3339 with the offset `zone` has at that instant.
fn in_zone(t: Timestamp, zone: &TimeZone) -> String {
    t.display_with_offset(zone.to_offset(t)).to_string()
}

/// The zone of a stored schedule; UTC if this binary's tz database does not know it (the
/// schedule was stored by a node with a newer one).
fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// `t` in UTC, to the second.
fn utc(t: Timestamp) -> String {
    t.round(jiff::Unit::Second).unwrap_or(t).to_string()
}

/// One schedule in `cron ls --json`.
#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    queue: &'a str,
    schedule: &'a str,
    timezone: &'a str,
    overlap: tickq::Overlap,
    catchup: tickq::Catchup,
    tasks: &'a [Task],
    version: u64,
    paused: bool,
    /// On the schedule's wall clock.
    next_at: Option<String>,
    next_at_utc: Option<Timestamp>,
    last_fired_at: Option<Timestamp>,
    fired: u64,
    skipped: u64,
}

impl<'a> Listed<'a> {
    fn new(info: &'a ScheduleInfo) -> Listed<'a> {
        let spec = &info.spec;
        let tz = zone(&spec.timezone);
        Listed {
            name: &spec.name,
            queue: &spec.queue,
            schedule: &spec.cron,
            timezone: &spec.timezone,
            overlap: spec.overlap,
            catchup: spec.catchup,
            tasks: &spec.tasks,
            version: info.version,
            paused: info.paused,
            next_at: info.next_at.map(|t| in_zone(t, &tz)),
            next_at_utc: info.next_at,
            last_fired_at: info.last_fired_at,
            fired: info.fired,
            skipped: info.skipped,
        }
    }
}

pub async fn list(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let schedules = crate::connect::connect(redis).await?.schedules().await?;
    if json {
        let listed: Vec<Listed> = schedules.iter().map(Listed::new).collect();
        output::json(&serde_json::json!({ "schedules": listed }))?;
        return Ok(());
    }
    if schedules.is_empty() {
        output::text("no schedules")?;
        return Ok(());
    }
    let mut table = Table::new([
        "NAME",
        "QUEUE",
        "SCHEDULE",
        "TIMEZONE",
        "NEXT",
        "NEXT (UTC)",
        "LAST FIRED (UTC)",
        "FIRED",
        "SKIPPED",
        "PAUSED",
    ]);
    for info in &schedules {
        let s = Listed::new(info);
        table.row(vec![
            s.name.to_owned(),
            s.queue.to_owned(),
            s.schedule.to_owned(),
            s.timezone.to_owned(),
            s.next_at.unwrap_or_else(|| "never".to_owned()),
            s.next_at_utc.map(utc).unwrap_or_else(|| "never".to_owned()),
            s.last_fired_at.map(utc).unwrap_or_else(|| "-".to_owned()),
            s.fired.to_string(),
            s.skipped.to_string(),
            if s.paused { "yes" } else { "no" }.to_owned(),
        ]);
    }
    output::text(&table.render())?;
    Ok(())
}

pub async fn add(redis: &Redis, spec: &CronSpec, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let outcome = client.upsert_schedule(&spec.to_schedule()).await?;
    let info = client.schedule(&spec.name).await?;
    let tz = zone(&info.spec.timezone);
    let next = info.next_at.map(|t| in_zone(t, &tz));
    if json {
        output::json(&serde_json::json!({
            "name": spec.name,
            "outcome": outcome,
            "version": info.version,
            "next_at": next,
            "next_at_utc": info.next_at,
        }))?;
        return Ok(());
    }
    let outcome = crate::output::upserted(outcome);
    let when = match (next, info.next_at) {
        (Some(local), Some(t)) => format!("next fire {local} ({})", utc(t)),
        _ => "it never fires".to_owned(),
    };
    output::text(&format!("schedule {} {outcome}; {when}", spec.name))?;
    Ok(())
}

pub async fn named(redis: &Redis, verb: CronVerb, name: &str, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let (value, text) = match verb {
        CronVerb::Rm => {
            client.remove_schedule(name).await?;
            (
                serde_json::json!({ "name": name, "removed": true }),
                format!("schedule {name} removed; jobs it created are left alone"),
            )
        }
        CronVerb::Pause => {
            client.pause_schedule(name).await?;
            (
                serde_json::json!({ "name": name, "paused": true }),
                format!("schedule {name} paused"),
            )
        }
        CronVerb::Resume => {
            client.resume_schedule(name).await?;
            (
                serde_json::json!({ "name": name, "paused": false }),
                format!("schedule {name} resumed"),
            )
        }
        CronVerb::Trigger => {
            let jobs = client.trigger_schedule(name).await?;
            let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
            let text = ids.join("\n");
            (serde_json::json!({ "name": name, "jobs": jobs }), text)
        }
    };
    if json {
        output::json(&value)?;
    } else {
        output::text(&text)?;
    }
    Ok(())
}

/// One fire time in `cron next --json`.
#[derive(Serialize)]
struct Fire {
    /// On the schedule's wall clock.
    at: String,
    utc: Timestamp,
    unix_ms: i64,
}

pub fn next(
    cron: &CronSchedule,
    after: Option<Timestamp>,
    count: usize,
    json: bool,
) -> anyhow::Result<()> {
    let after = after.unwrap_or_else(Timestamp::now);
    let tz = zone(cron.timezone());
    let fires: Vec<Fire> = cron
        .iter_after(after)
        .take(count)
        .map(|t| Fire {
            at: in_zone(t, &tz),
            utc: t,
            unix_ms: t.as_millisecond(),
        })
        .collect();
    if json {
        output::json(&serde_json::json!({
            "schedule": cron.expr(),
            "timezone": cron.timezone(),
            "after": after,
            "next": fires,
        }))?;
        return Ok(());
    }
    if fires.is_empty() {
        // On stderr: stdout is one fire time per line, for scripts.
        eprintln!(
            "{:?} has no fire time after {}",
            cron.expr(),
            in_zone(after.round(jiff::Unit::Second).unwrap_or(after), &tz)
        );
        return Ok(());
    }
    let lines: Vec<&str> = fires.iter().map(|f| f.at.as_str()).collect();
    output::text(&lines.join("\n"))?;
    Ok(())
}
