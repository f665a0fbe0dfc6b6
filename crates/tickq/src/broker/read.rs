//! Reading jobs and counts back: one job, pages of a state's index (with filters and a
//! cursor), and a queue's counts. Nothing here changes Redis.

use super::keys::QueueKeys;
use super::message::Envelope;
use super::scripts::SCRIPTS;
use super::value::{self, int};
use super::{Broker, limits, record};
use crate::job::{JobInfo, JobState, Progress, ms_to_timestamp};
use crate::queue::QueueCounts;
use crate::{Error, Result};
use redis::Value;
use std::collections::{BTreeMap, HashMap};

/// What a page of a state's index asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageQuery<'a> {
    /// Newest first (finished states) rather than index order.
    pub(crate) newest_first: bool,
    /// Resume after this (score, id); `None` starts at the top.
    pub(crate) after: Option<(&'a str, &'a str)>,
    pub(crate) want: usize,
    pub(crate) budget: usize,
    pub(crate) kind: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) error: &'a str,
    pub(crate) from_ms: Option<i64>,
    pub(crate) to_ms: Option<i64>,
    /// The job field that holds the state's time (`due`, `started` or `finished`).
    pub(crate) time_field: &'a str,
}

/// One page: the matching ids in order, where the next page starts (`None`: the end), and
/// how many index entries were examined.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) ids: Vec<String>,
    pub(crate) next: Option<(String, String)>,
    pub(crate) examined: u64,
}

impl Broker {
    /// Read one job; `None` when there is no such job in the queue.
    pub(crate) async fn job(&self, keys: &QueueKeys, id: &str) -> Result<Option<JobInfo>> {
        self.upgrade(keys).await?;
        let fields = record::get(&mut self.conn.clone(), keys, id).await?;
        Ok(fields.map(|fields| job_info(&keys.name, id, &fields)))
    }

    /// Read many jobs of one queue in one round trip; missing ones are skipped.
    pub(crate) async fn jobs(&self, keys: &QueueKeys, ids: &[String]) -> Result<Vec<JobInfo>> {
        self.upgrade(keys).await?;
        let all = record::get_many(&mut self.conn.clone(), keys, ids).await?;
        Ok(ids
            .iter()
            .zip(all)
            .filter_map(|(id, fields)| Some(job_info(&keys.name, id, &fields?)))
            .collect())
    }

    /// Ids in `state` (the script tests read indexes with it), oldest (or, for pending, next to run) first.
    #[cfg(test)]
    pub(crate) async fn ids(
        &self,
        keys: &QueueKeys,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = (offset + limit - 1) as isize;
        use redis::AsyncCommands;
        if state == JobState::Pending {
            let bands: Vec<String> = self.conn.clone().zrange(&keys.pending, 0, -1).await?;
            let mut ids = Vec::new();
            for band in bands {
                let key = format!("{}:{band}", keys.pending);
                let part: Vec<String> = self.conn.clone().lrange(&key, 0, -1).await?;
                ids.extend(part);
            }
            return Ok(ids.into_iter().skip(offset).take(limit).collect());
        }
        Ok(self
            .conn
            .clone()
            .zrange(keys.index(state), offset as isize, stop)
            .await?)
    }

    pub(crate) async fn counts(&self, keys: &QueueKeys) -> Result<QueueCounts> {
        let mut pipe = redis::pipe();
        for state in JobState::ALL {
            if state == JobState::Pending {
                pipe.zrange_withscores(&keys.pending, 0, -1);
            } else {
                pipe.zcard(keys.index(state));
            }
        }
        pipe.hget(&keys.stats, "processed")
            .hget(&keys.stats, "failed")
            .exists(&keys.paused)
            .cmd("HMGET")
            .arg(&keys.limits)
            .arg("concurrency")
            .arg("rate")
            .arg("per");
        let reply: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut counts = QueueCounts {
            queue: keys.name.clone(),
            ..Default::default()
        };
        for (state, v) in JobState::ALL.into_iter().zip(&reply) {
            let n = if state == JobState::Pending {
                let set = redis::from_redis_value(v.clone()).map_err(|e| {
                    Error::corrupt(format!(
                        "queue {} has an unreadable pending set: {e}",
                        keys.name
                    ))
                })?;
                self.pending_count(keys, set).await?
            } else {
                int(v).unwrap_or(0) as u64
            };
            counts.states.insert(state, n);
        }
        let n = JobState::ALL.len();
        counts.processed = value::int_or_zero(&reply[n]) as u64;
        counts.failed = value::int_or_zero(&reply[n + 1]) as u64;
        counts.paused = value::int_or_zero(&reply[n + 2]) != 0;
        let fields = redis::from_redis_value(reply[n + 3].clone()).map_err(|e| {
            Error::corrupt(format!("queue {} has unreadable limits: {e}", keys.name))
        })?;
        counts.limits = limits::limits_from(fields);
        Ok(counts)
    }

    /// How many jobs are pending: the sum of the priorities' list lengths, given the set of
    /// priorities with its scores (`set`). A set a version before lists wrote holds job ids
    /// until its queue's next pending write (`pending_upgrade` in lua/prelude.lua): each of
    /// those counts as one.
    async fn pending_count(&self, keys: &QueueKeys, set: Vec<(String, f64)>) -> Result<u64> {
        let mut old = 0;
        let mut pipe = redis::pipe();
        for (member, score) in &set {
            match pending_band(member, *score) {
                Some(priority) => {
                    pipe.llen(keys.pending_band(priority));
                }
                None => old += 1,
            }
        }
        if old == set.len() {
            return Ok(old as u64);
        }
        let lens: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(old as u64 + lens.iter().sum::<u64>())
    }

    /// Many hashes of whole numbers (history minutes), in order; a missing hash is empty.
    pub(crate) async fn hashes_of_numbers(
        &self,
        keys: &[String],
    ) -> Result<Vec<HashMap<String, u64>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hgetall(key);
        }
        Ok(pipe.query_async(&mut self.conn.clone()).await?)
    }

    /// One page of `state`'s index (see `lua/jobs_page.lua`).
    pub(crate) async fn page(
        &self,
        keys: &QueueKeys,
        state: JobState,
        query: &PageQuery<'_>,
    ) -> Result<Page> {
        self.upgrade(keys).await?;
        let (score, id) = query.after.unwrap_or(("", ""));
        let ms = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
        let mut reply: Vec<String> = SCRIPTS
            .jobs_page
            .key(keys.index(state))
            .arg(&keys.job_prefix)
            .arg(if query.newest_first { "1" } else { "0" })
            .arg(score)
            .arg(id)
            .arg(query.want)
            .arg(query.budget)
            .arg(query.kind)
            .arg(query.payload)
            .arg(query.error)
            .arg(ms(query.from_ms))
            .arg(ms(query.to_ms))
            .arg(query.time_field)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if reply.len() < 3 {
            return Err(Error::corrupt("jobs_page returned an unexpected reply"));
        }
        let ids = reply.split_off(3);
        let examined = reply.pop().and_then(|n| n.parse().ok()).unwrap_or(0);
        let next_id = reply.pop().unwrap_or_default();
        let next_score = reply.pop().unwrap_or_default();
        let next = (!next_score.is_empty()).then_some((next_score, next_id));
        Ok(Page {
            ids,
            next,
            examined,
        })
    }
}

fn job_info(queue: &str, id: &str, fields: &record::Fields) -> JobInfo {
    let s = |name: &str| record::text(fields, name);
    let n = |name: &str| s(name).and_then(|v| v.parse::<i64>().ok());
    let t = |name: &str| n(name).and_then(ms_to_timestamp);
    let data = fields.get("data").map(Vec::as_slice).unwrap_or_default();
    let decoded = Envelope::decode(data, id, queue);
    let (kind, payload, timeout_ms, meta, corrupt) = match decoded {
        Ok(e) => (e.kind, e.payload, e.timeout_ms, e.meta, None),
        Err(e) => (
            String::new(),
            serde_json::Value::Null,
            None,
            BTreeMap::new(),
            Some(e.to_string()),
        ),
    };
    let state = s("state")
        .and_then(|v| v.parse().ok())
        .unwrap_or(JobState::Dead);
    JobInfo {
        id: id.to_owned(),
        queue: queue.to_owned(),
        kind,
        payload,
        state,
        attempt: n("attempt").unwrap_or(0) as u32,
        max_attempts: n("max").unwrap_or(0) as u32,
        priority: n("priority").unwrap_or(0) as i32,
        fence: n("fence").unwrap_or(0) as u64,
        timeout_ms,
        created_at: t("created"),
        due_at: t("due"),
        started_at: t("started"),
        finished_at: t("finished"),
        lease_until: if state == JobState::Active {
            t("lease")
        } else {
            None
        },
        worker: s("owner"),
        last_error: s("error"),
        result: s("result"),
        // A request that came too late (the job finished first) is not shown on a finished job.
        cancel_requested: state == JobState::Active && fields.contains_key("cancel"),
        progress: fields
            .get("progress")
            .and_then(|p| serde_json::from_slice::<Progress>(p).ok()),
        meta,
        corrupt,
    }
}

/// The priority a member of the pending set names, when it is one: a whole number in
/// [-1000, 1000] written as Rust and Lua write it, scored minus itself (as `pending_upgrade`
/// in lua/prelude.lua tells them from the job ids of the layout before lists).
pub(crate) fn pending_band(member: &str, score: f64) -> Option<i32> {
    let priority: i32 = member.parse().ok()?;
    (priority.to_string() == member && priority.abs() <= 1000 && score == -f64::from(priority))
        .then_some(priority)
}
