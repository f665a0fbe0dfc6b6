//! Workflows in Redis: submit one all or nothing, read one back, mark it cancelled, start its
//! failed steps over. Ending a step and settling its children happens in the scripts that end
//! jobs (`flow_ended` in lua/prelude.lua).

use super::Broker;
use super::keys::QueueKeys;
use super::message::Envelope;
use super::scripts::SCRIPTS;
use crate::flow::{Workflow, step_job_id};
use crate::job::validate_queue_name;
use crate::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, HashMap};

/// A step's job id that is taken already: the error that says so, naming the queue.
fn conflict_in(e: Error, id: &str, queue: &str) -> Error {
    if e.kind() != ErrorKind::AlreadyExists {
        return e;
    }
    Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "job {} already exists in queue {queue}, so workflow {id} cannot be created \
             (nothing was in that queue)",
            e.message()
        ),
    )
}

/// Most outbox entries one relay call reads from a queue.
const RELAY_BATCH: usize = 1000;

/// How far the relay follows entries that settling writes in the targets' own outboxes (a
/// cancel that cascades on through a third queue) before it leaves them to the next relay.
const RELAY_HOPS: usize = 8;

/// How long a workflow part may wait for its home before the janitor takes it for an orphan
/// (`drop_orphan_parts`). A submit creates its home right after its parts (milliseconds); an
/// hour leaves room for a stalled submitter, whose repeat of the submit would create the parts
/// again anyway.
pub(crate) const ORPHAN_PART_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// One queue's part of a workflow to submit: its steps (indices, parents first).
struct QueuePart<'a> {
    keys: std::sync::Arc<QueueKeys>,
    steps: Vec<usize>,
    /// Steps of other queues with children here, with those children.
    links: BTreeMap<&'a str, Vec<&'a str>>,
}

/// What every `flow_submit` call of one submit shares.
struct Submit<'a> {
    flow: &'a Workflow,
    id: &'a str,
    keep_ms: u64,
    definition: String,
    home: &'a str,
    /// The queues other than the home with steps.
    others: Vec<&'a str>,
    children: Vec<Vec<&'a str>>,
    queue_of: HashMap<&'a str, &'a str>,
}

impl Broker {
    /// Create `flow` under `id`; answers whether it was created (`false`: a workflow with
    /// this id exists, nothing changed). Steps in one queue: one script call. Steps in other
    /// queues too: one call per other queue (its part, every step waiting), then the home,
    /// which tells the parts they are ready (docs/workflows.md, "Steps in other queues").
    pub(crate) async fn submit_flow(
        &self,
        flow: &Workflow,
        id: &str,
        keep_ms: u64,
    ) -> Result<bool> {
        let flow = &*flow.resolved()?;
        let order = flow.topological_order()?;
        // New jobs, like an enqueue: refused above the memory high-water mark (memory.rs).
        self.check_room().await?;
        let home = flow.queue.as_str();
        let children = flow.children();
        let queue_of: HashMap<&str, &str> = flow
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.job.queue.as_str()))
            .collect();
        let mut parts: BTreeMap<&str, QueuePart<'_>> = BTreeMap::new();
        for q in std::iter::once(home).chain(order.iter().map(|&i| queue_of[&*flow.steps[i].id])) {
            parts.entry(q).or_insert_with(|| QueuePart {
                keys: self.keys(q),
                steps: Vec::new(),
                links: BTreeMap::new(),
            });
        }
        // Every queue the workflow writes jobs to is in layout 5 first (upgrade.rs).
        for part in parts.values() {
            self.upgrade_to_write(&part.keys).await?;
        }
        for &i in &order {
            let step = &flow.steps[i];
            let q = queue_of[&*step.id];
            if let Some(part) = parts.get_mut(q) {
                part.steps.push(i);
            }
            for &child in &children[i] {
                let cq = queue_of[child];
                if let Some(part) = parts.get_mut(cq).filter(|_| cq != q) {
                    part.links.entry(step.id.as_str()).or_default().push(child);
                }
            }
        }
        let home_keys = parts[home].keys.clone();
        if parts.len() > 1 && self.flow_exists(&home_keys, id).await? {
            return Ok(false);
        }
        let submit = Submit {
            flow,
            id,
            keep_ms,
            definition: serde_json::to_string(&flow.definition(id))
                .map_err(|e| Error::invalid(format!("workflow does not serialise: {e}")))?,
            home,
            others: parts.keys().copied().filter(|q| *q != home).collect(),
            children,
            queue_of,
        };
        // Parts first, the home last: no step of a part starts before the home exists and
        // tells it so, and a part that is there already (a repeated submit after a crash)
        // answers `exists` and is kept as it is.
        for (&q, part) in parts.iter().filter(|(q, _)| **q != home) {
            self.submit_part(&submit, part, false)
                .await
                .map_err(|e| conflict_in(e, id, q))?;
        }
        let created = self
            .submit_part(&submit, &parts[home], true)
            .await
            .map_err(|e| conflict_in(e, id, home))?;
        if created && !submit.others.is_empty() {
            // The fast path of `ready`; the workers' relays pick it up if this one fails.
            if let Err(e) = self.relay_flows(&home_keys).await {
                tracing::debug!(queue = %home, error = %e, "relaying a new workflow failed; the workers' relays will");
            }
        }
        Ok(created)
    }

    /// One `flow_submit` call: the home's or the part in `part`'s queue.
    async fn submit_part(
        &self,
        s: &Submit<'_>,
        part: &QueuePart<'_>,
        is_home: bool,
    ) -> Result<bool> {
        let keys = &part.keys;
        self.register_queue(&keys.name).await?;
        let mut inv = SCRIPTS.flow_submit.prepare_invoke();
        inv.key(&keys.pending)
            .key(&keys.waiting)
            .key(&keys.wake)
            .key(keys.flow(s.id))
            .key(&keys.flows)
            .key(&keys.flow_ends);
        inv.arg(&keys.job_prefix)
            .arg(step_job_id(s.id, ""))
            .arg(&s.flow.name)
            .arg(s.keep_ms.max(1))
            .arg(if is_home { s.definition.as_str() } else { "" })
            .arg(if is_home { "" } else { s.home })
            .arg(s.flow.steps.len())
            .arg(if is_home {
                s.others.join(" ")
            } else {
                String::new()
            })
            .arg(part.links.len());
        for (parent, kids) in &part.links {
            inv.arg(*parent).arg(kids.join(" "));
        }
        for &i in &part.steps {
            let step = &s.flow.steps[i];
            let mut job = step.job.clone();
            job.meta.insert("flow".into(), s.id.to_owned());
            job.meta.insert("step".into(), step.id.clone());
            if !step.after.is_empty() {
                job.meta.insert("after".into(), step.after.join(" "));
            }
            let here: Vec<&str> = s.children[i]
                .iter()
                .copied()
                .filter(|c| s.queue_of[c] == keys.name)
                .collect();
            // The other queues to tell of its end: those of its children, and the home.
            let mut tell: Vec<&str> = s.children[i]
                .iter()
                .map(|c| s.queue_of[c])
                .filter(|q| *q != keys.name)
                .collect();
            if !is_home {
                tell.push(s.home);
            }
            tell.sort_unstable();
            tell.dedup();
            inv.arg(&step.id)
                .arg(Envelope::encode_new(&job))
                .arg(job.priority)
                .arg(job.max_attempts)
                .arg(step.after.len())
                .arg(step.on_parent_failure.as_str())
                .arg(here.join(" "))
                .arg(tell.join(" "));
        }
        let answer: String = inv.invoke_async(&mut self.conn.clone()).await?;
        match answer.as_str() {
            "created" => Ok(true),
            "exists" => Ok(false),
            other => match other.strip_prefix("conflict:") {
                Some(job) => Err(Error::new(ErrorKind::AlreadyExists, job.to_owned())),
                None => Err(Error::corrupt(format!("flow_submit answered {other:?}"))),
            },
        }
    }

    /// Hand this queue's workflow outbox to the queues it names (`flow_settle` there), then
    /// remove what was handed, and follow what that settling wrote in the targets' outboxes
    /// (a few hops). Safe to run anywhere, any number of times at once: a target applies each
    /// entry once (prelude.lua, "Workflows"). Answers how many entries were applied.
    pub(crate) async fn relay_flows(&self, keys: &QueueKeys) -> Result<u64> {
        let mut applied = 0;
        let mut queues = vec![keys.name.clone()];
        let mut hops = 0;
        while let Some(queue) = queues.pop() {
            let keys = self.keys(&queue);
            let entries = self.outbox(&keys).await?;
            if entries.is_empty() {
                continue;
            }
            let mut by_target: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let mut bad = Vec::new();
            for (field, value) in entries {
                match field.rsplit_once(' ') {
                    Some((_, target)) if validate_queue_name(target).is_ok() => by_target
                        .entry(target.to_owned())
                        .or_default()
                        .push((field, value)),
                    _ => bad.push((field, value)),
                }
            }
            if !bad.is_empty() {
                tracing::warn!(queue = %queue, entries = ?bad, "dropping unreadable workflow outbox entries");
            }
            let mut relayed = bad;
            for (target, entries) in by_target {
                let tkeys = self.keys(&target);
                let mut inv = SCRIPTS.flow_settle.prepare_invoke();
                inv.key(&tkeys.pending).arg(&tkeys.job_prefix);
                for (field, value) in &entries {
                    inv.arg(field).arg(value);
                }
                let n: u64 = inv.invoke_async(&mut self.conn.clone()).await?;
                applied += n;
                relayed.extend(entries);
                if hops < RELAY_HOPS && !queues.contains(&target) {
                    queues.push(target);
                }
            }
            let mut inv = SCRIPTS.flow_relayed.prepare_invoke();
            inv.key(&keys.flow_outbox);
            for (field, value) in &relayed {
                inv.arg(field).arg(value);
            }
            let _: u64 = inv.invoke_async(&mut self.conn.clone()).await?;
            hops += 1;
        }
        Ok(applied)
    }

    /// Up to [`RELAY_BATCH`] entries of a queue's workflow outbox (field, value). HGETALL,
    /// not HSCAN: the least-privilege ACL (docs/operations.md) has it, and the outbox holds
    /// only the ends of the last moments (every worker's acker drains it after each ack).
    async fn outbox(&self, keys: &QueueKeys) -> Result<Vec<(String, String)>> {
        let mut all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&keys.flow_outbox)
            .query_async(&mut self.conn.clone())
            .await?;
        all.truncate(RELAY_BATCH);
        Ok(all)
    }

    /// Drop this queue's workflow parts whose home never came: listed in `flow-parts` for
    /// longer than `age` (still not ready), and no home in their home queue (`flow_drop_part`
    /// deletes the part and its waiting steps). A part whose home exists waits for the relay to
    /// bring its `ready`, and is looked at again next time. At most `limit` parts per call;
    /// answers how many were dropped.
    pub(crate) async fn drop_orphan_parts(
        &self,
        keys: &QueueKeys,
        age: std::time::Duration,
        limit: usize,
    ) -> Result<u64> {
        let before = self.now_ms().await? - age.as_millis() as i64;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&keys.flow_parts)
            .arg("-inf")
            .arg(before)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        let mut dropped = 0;
        for id in ids {
            if let Some(Some(home)) = self.flow_home(keys, &id).await?
                && validate_queue_name(&home).is_ok()
                && self.flow_exists(&self.keys(&home), &id).await?
            {
                continue;
            }
            let (answer, _steps): (String, u64) = SCRIPTS
                .flow_drop_part
                .key(keys.flow(&id))
                .key(&keys.waiting)
                .key(&keys.cancelled)
                .key(&keys.flow_parts)
                .arg(&keys.job_prefix)
                .arg(&id)
                .invoke_async(&mut self.conn())
                .await?;
            if answer == "dropped" {
                tracing::info!(queue = %keys.name, workflow = %id, "dropped a workflow part whose home never came");
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// The workflow hash, or `None` when there is none with this id in this queue.
    pub(crate) async fn flow_hash(
        &self,
        keys: &QueueKeys,
        id: &str,
    ) -> Result<Option<HashMap<String, String>>> {
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys.flow(id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(if hash.contains_key("jp") {
            Some(hash)
        } else {
            None
        })
    }

    /// Whether this queue has workflow `id`'s hash, and if it is a part (a queue with steps
    /// of a workflow whose home is elsewhere), its home: `None` no hash, `Some(None)` the
    /// home, `Some(Some(home))` a part.
    pub(crate) async fn flow_home(
        &self,
        keys: &QueueKeys,
        id: &str,
    ) -> Result<Option<Option<String>>> {
        let (jp, home): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(keys.flow(id))
            .arg("jp")
            .arg("home")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(jp.map(|_| home))
    }

    /// Whether workflow `id` exists in this queue.
    pub(crate) async fn flow_exists(&self, keys: &QueueKeys, id: &str) -> Result<bool> {
        Ok(redis::cmd("EXISTS")
            .arg(keys.flow(id))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// State and last error of each of these jobs (`None` for a job that is gone), in order,
    /// in one round trip.
    pub(crate) async fn job_states(
        &self,
        keys: &QueueKeys,
        ids: &[&str],
    ) -> Result<Vec<(Option<String>, Option<String>)>> {
        self.upgrade(keys).await?;
        let records = super::record::get_many(&mut self.conn.clone(), keys, ids).await?;
        Ok(records
            .into_iter()
            .map(|fields| match fields {
                Some(f) => (
                    super::record::text(&f, "state"),
                    super::record::text(&f, "error"),
                ),
                None => (None, None),
            })
            .collect())
    }

    /// The results the workflow holds for these steps (`None`: the step ended without one),
    /// in order, in one round trip.
    pub(crate) async fn step_results(
        &self,
        keys: &QueueKeys,
        flow: &str,
        steps: &[&str],
    ) -> Result<Vec<Option<String>>> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys.flow(flow));
        for step in steps {
            cmd.arg(format!("r:{step}"));
        }
        Ok(cmd.query_async(&mut self.conn.clone()).await?)
    }

    /// Mark a workflow cancelled, so that no step ending from now on releases a child (each
    /// waiting child is cancelled instead). Answers `false` when the workflow is gone.
    pub(crate) async fn mark_flow_cancelled(&self, keys: &QueueKeys, id: &str) -> Result<bool> {
        let marked: i64 = SCRIPTS
            .flow_cancel
            .key(keys.flow(id))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(marked == 1)
    }

    /// Start the failed steps of a workflow over in one queue (the whole workflow when all
    /// its steps are there). `steps` are every step of the workflow, parents before children:
    /// (step id, parents, whether it is in this queue, for a failed step being started over
    /// the version of its end: lua/flow_retry.lua). Answers how many started over here.
    pub(crate) async fn retry_flow(
        &self,
        keys: &QueueKeys,
        id: &str,
        steps: &[(String, Vec<String>, bool, Option<u64>)],
    ) -> Result<u64> {
        let mut inv = SCRIPTS.flow_retry.prepare_invoke();
        inv.key(&keys.pending)
            .key(&keys.waiting)
            .key(&keys.wake)
            .key(keys.flow(id))
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.completed);
        inv.arg(&keys.job_prefix);
        for (step, parents, here, version) in steps {
            inv.arg(step)
                .arg(parents.join(" "))
                .arg(if *here { "1" } else { "0" })
                .arg(version.map(|v| v.to_string()).unwrap_or_default());
        }
        let n: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
        if n < 0 {
            return Err(Error::not_found(format!(
                "no workflow {id} in queue {}",
                keys.name
            )));
        }
        Ok(n as u64)
    }
}
