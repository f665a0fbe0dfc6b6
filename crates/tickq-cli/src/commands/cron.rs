//! `cron ls | add | rm | trigger | pause | resume | next`.
//!
//! Times a person reads are shown on the schedule's own wall clock (RFC 3339 with that zone's
//! offset), next to UTC: a tick is a UTC instant, but "02:00 in Shanghai" is what was asked for.

use crate::config::{CronSpec, CronVerb, Redis};
use crate::output::{self, Table};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tickq::CronSchedule;

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

pub async fn list(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let list = crate::connect::connect(redis)
        .await?
        .inspector()
        .schedules()
        .await?;
    if json {
        output::json(&list)?;
        return Ok(());
    }
    let schedules = list.schedules;
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
    for s in schedules {
        table.row(vec![
            s.name,
            s.queue,
            s.schedule,
            s.timezone,
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
    let info = client.inspector().schedule(&spec.name).await?;
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
    let outcome = outcome.as_str();
    let when = match (next, info.next_at) {
        (Some(local), Some(t)) => format!("next fire {local} ({})", utc(t)),
        _ => "it never fires".to_owned(),
    };
    output::text(&format!("schedule {} {outcome}; {when}", spec.name))?;
    Ok(())
}

pub async fn named(redis: &Redis, verb: CronVerb, name: &str, json: bool) -> anyhow::Result<()> {
    let inspector = crate::connect::connect(redis).await?.inspector();
    let (value, text) = match verb {
        CronVerb::Rm => (
            serde_json::to_value(inspector.remove_schedule(name).await?)?,
            format!("schedule {name} removed; jobs it created are left alone"),
        ),
        CronVerb::Pause => (
            serde_json::to_value(inspector.pause_schedule(name).await?)?,
            format!("schedule {name} paused"),
        ),
        CronVerb::Resume => (
            serde_json::to_value(inspector.resume_schedule(name).await?)?,
            format!("schedule {name} resumed"),
        ),
        CronVerb::Trigger => {
            let triggered = inspector.trigger_schedule(name).await?;
            let ids: Vec<&str> = triggered.jobs.iter().map(|j| j.id.as_str()).collect();
            let text = ids.join("\n");
            (serde_json::to_value(&triggered)?, text)
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
