//! The checker: reads the history (written outside Redis, by the harness and by the jobs
//! themselves) and Redis' final state (raw keys, as docs/redis-keys.md names them, not through
//! tickq), and lists every broken guarantee.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// One line of the history file, written with `O_APPEND` by many processes (each line is
/// far below `PIPE_BUF`, so lines never interleave).
#[derive(Debug, Clone)]
pub enum Event {
    /// `Q <id> <ms>`: the harness enqueued the job and Redis answered it.
    Enqueued { id: String },
    /// `S|E <id> <fence> <node> <ms> <cron> <scheduled_at>`: a run started / ended.
    Run {
        start: bool,
        id: String,
        fence: u64,
        ms: u64,
        cron: bool,
        scheduled_at: String,
    },
    /// `F <name> <start ms> <end ms>`: a fault the harness injected, from start to repair.
    Fault { end: u64 },
}

pub fn read(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["Q", id, _] => Some(Event::Enqueued { id: id.to_string() }),
                [se @ ("S" | "E"), id, fence, _node, ms, rest @ ..] => Some(Event::Run {
                    start: *se == "S",
                    id: id.to_string(),
                    fence: fence.parse().ok()?,
                    ms: ms.parse().ok()?,
                    cron: rest.first().is_some_and(|c| !c.is_empty()),
                    scheduled_at: rest.get(1).unwrap_or(&"").to_string(),
                }),
                ["F", _name, _start, end] => Some(Event::Fault {
                    end: end.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect()
}

/// What one run of a scenario shows.
#[derive(Debug, Default)]
pub struct Report {
    pub accepted: usize,
    pub cron_jobs: usize,
    /// Accepted jobs not completed at the end (never ran, or left waiting or active).
    pub lost: Vec<String>,
    /// Jobs that started more than once (each time under a new fence: allowed, at least once).
    pub ran_twice: usize,
    /// Longest time from the repair of a fault to the next job that finished, ms.
    pub recovery_ms: u64,
    /// Longest time in which no job finished, from the first finish to the last, ms.
    pub stall_ms: u64,
    /// Broken guarantees other than loss.
    pub violations: Vec<String>,
    /// The history's lines, for checks of a scenario's own (locks).
    pub lines: Vec<String>,
}

impl Report {
    pub fn row(&self, name: &str, runs: usize) -> String {
        format!(
            "| {name} | {runs} | {} (+{} cron) | {} | {} | {} ms | {} ms | {} |",
            self.accepted,
            self.cron_jobs,
            self.lost.len(),
            self.ran_twice,
            self.recovery_ms,
            self.stall_ms,
            if self.violations.is_empty() {
                "none".to_owned()
            } else {
                self.violations.len().to_string()
            }
        )
    }
}

/// Redis' final state of one job: its hash's `state`, `fence` and `result`.
pub struct Final {
    pub state: Option<String>,
    pub fence: Option<u64>,
    pub result: Option<String>,
}

/// The only place that reads Redis' raw keys (docs/redis-keys.md): the key layout is
/// tickq's, not the checker's, and may change (a packed job record, say); adapt it here.
pub struct RawKeys<'a> {
    /// The queues the workload used.
    pub queues: &'a [&'a str],
    /// The cron schedule's queue and name.
    pub schedule: (&'a str, &'a str),
    /// Which queue a job id is in.
    pub queue_of: &'a dyn Fn(&str) -> &'a str,
}

const UNFINISHED: [&str; 4] = ["pending", "scheduled", "retry", "active"];

impl RawKeys<'_> {
    fn key(queue: &str, name: &str) -> String {
        format!("tickq:{{{queue}}}:{name}")
    }

    /// Jobs waiting or running in every queue (an unreadable index counts as busy; pending
    /// counts its priorities, each of which has at least one job: see `pending`). A queue's
    /// indexes are read in one transaction: read one by one, a job that a recover moved from
    /// `active` back to `pending` between the two reads was in neither, and a run could be
    /// taken for finished while it still had jobs to run (seen once in ~10 runs of the
    /// skewed-clocks test: 4 jobs active after the run).
    pub fn busy(&self, conn: &mut dyn redis::ConnectionLike) -> u64 {
        let mut n = 0;
        for q in self.queues {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for index in UNFINISHED {
                pipe.cmd("ZCARD").arg(Self::key(q, index));
            }
            n += pipe
                .query::<Vec<u64>>(conn)
                .map_or(1, |counts| counts.iter().sum());
        }
        n
    }

    pub fn counters(&self, conn: &mut dyn redis::ConnectionLike) -> Counters {
        let mut counter = |key: String, field: &str| -> u64 {
            redis::cmd("HGET")
                .arg(key)
                .arg(field)
                .query::<Option<u64>>(conn)
                .unwrap()
                .unwrap_or(0)
        };
        let mut processed = 0;
        for q in self.queues {
            processed += counter(Self::key(q, "stats"), "processed");
        }
        let (queue, name) = self.schedule;
        let cron_fired = counter(Self::key(queue, &format!("schedule:{name}")), "fired");
        let mut leftovers = BTreeMap::new();
        for index in UNFINISHED {
            let mut n = 0;
            for q in self.queues {
                n += if index == "pending" {
                    Self::pending(conn, q)
                } else {
                    redis::cmd("ZCARD")
                        .arg(Self::key(q, index))
                        .query::<u64>(conn)
                        .unwrap()
                };
            }
            leftovers.insert(index.to_owned(), n);
        }
        Counters {
            leftovers,
            processed,
            cron_fired,
        }
    }

    /// How many jobs are pending in `queue`: `pending` is the set of the priorities that have
    /// pending jobs, each with its list `pending:<priority>`.
    fn pending(conn: &mut dyn redis::ConnectionLike, queue: &str) -> u64 {
        let bands: Vec<String> = redis::cmd("ZRANGE")
            .arg(Self::key(queue, "pending"))
            .arg(0)
            .arg(-1)
            .query(conn)
            .unwrap();
        bands
            .iter()
            .map(|band| {
                redis::cmd("LLEN")
                    .arg(Self::key(queue, &format!("pending:{band}")))
                    .query::<u64>(conn)
                    .unwrap()
            })
            .sum()
    }

    /// A job's `state`, `fence` and `result`, by the rule of layout 5 (docs/redis-keys.md):
    /// no payload in the queue's `jobs` hash, no job; else a `running` entry means active and
    /// an `acked` one completed (their fence is the first, resp. second, word); else the
    /// notes' state and fence, and no state stored means pending.
    pub fn job(&self, conn: &mut dyn redis::ConnectionLike, id: &str) -> Final {
        let queue = (self.queue_of)(id);
        let exists: bool = redis::cmd("HEXISTS")
            .arg(Self::key(queue, "jobs"))
            .arg(id)
            .query(conn)
            .unwrap();
        let (state, fence, result): (Option<String>, Option<u64>, Option<String>) =
            redis::cmd("HMGET")
                .arg(Self::key(queue, &format!("job:{id}")))
                .arg("state")
                .arg("fence")
                .arg("result")
                .query(conn)
                .unwrap();
        if !exists {
            return Final {
                state: None,
                fence: None,
                result,
            };
        }
        // One command at a time: a Cluster connection takes no pipeline.
        let mut facts = |hash: &str| -> Option<String> {
            redis::cmd("HGET")
                .arg(Self::key(queue, hash))
                .arg(id)
                .query(conn)
                .unwrap()
        };
        let (running, acked) = (facts("running"), facts("acked"));
        let word = |facts: &str, n: usize| facts.split([' ', '\n']).nth(n)?.parse().ok();
        let (state, fence) = match (running, acked) {
            (Some(run), _) => (Some("active".to_owned()), word(&run, 0)),
            (None, Some(done)) => (Some("completed".to_owned()), word(&done, 1)),
            _ => (Some(state.unwrap_or_else(|| "pending".to_owned())), fence),
        };
        Final {
            state,
            fence,
            result,
        }
    }
}

/// Redis' counters at the end of a run, read from raw keys (see [`RawKeys`]).
pub struct Counters {
    /// Jobs per index that should be empty: pending, scheduled, retry, active.
    pub leftovers: BTreeMap<String, u64>,
    /// Acks applied (the queue's `stats` hash, `processed`).
    pub processed: u64,
    /// Ticks the cron schedule fired (its hash's `fired`).
    pub cron_fired: u64,
}

pub fn check(events: &[Event], job: &mut dyn FnMut(&str) -> Final, counters: Counters) -> Report {
    let Counters {
        leftovers,
        processed,
        cron_fired,
    } = counters;
    let mut report = Report::default();
    let mut accepted = BTreeSet::new();
    let mut starts: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut cron_ticks: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut cron_ids = BTreeSet::new();
    let mut ends = Vec::new();
    let mut repairs = Vec::new();
    for e in events {
        match e {
            Event::Enqueued { id } => {
                accepted.insert(id.as_str());
            }
            Event::Run {
                start,
                id,
                fence,
                ms,
                cron,
                scheduled_at,
            } => {
                if *start {
                    starts.entry(id).or_default().push(*fence);
                    if *cron {
                        cron_ids.insert(id.as_str());
                        cron_ticks.entry(scheduled_at).or_default().insert(id);
                    }
                } else {
                    ends.push(*ms);
                }
            }
            Event::Fault { end } => repairs.push(*end),
        }
    }
    report.accepted = accepted.len();
    report.cron_jobs = cron_ids.len();
    // Jobs that ran though their enqueue was not answered (Redis applied it, then the answer
    // was lost to the fault): not accepted, but they run and end like any other.
    let unanswered: BTreeSet<&str> = starts
        .keys()
        .copied()
        .filter(|id| !accepted.contains(id) && !cron_ids.contains(id))
        .collect();
    let mut completed = 0u64;
    for id in accepted
        .iter()
        .chain(cron_ids.iter())
        .chain(unanswered.iter())
    {
        let fin = job(id);
        let runs = starts.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if fin.state.as_deref() != Some("completed") {
            report
                .lost
                .push(format!("{id} ({:?}, {} runs)", fin.state, runs.len()));
            continue;
        }
        completed += 1;
        if runs.is_empty() {
            report
                .violations
                .push(format!("{id} is completed but never ran"));
        }
        if runs.len() > 1 {
            report.ran_twice += 1;
        }
        // Two runs under one fence: two holders of one claim.
        let distinct: BTreeSet<_> = runs.iter().collect();
        if distinct.len() != runs.len() {
            report
                .violations
                .push(format!("{id} ran twice under one fence: {runs:?}"));
        }
        // The result kept is that of the holder whose fence the job carries: an ack from a
        // holder with an older fence (a zombie) was applied otherwise.
        let result_fence = fin
            .result
            .as_deref()
            .and_then(|r| r.trim().strip_prefix("fence="))
            .and_then(|f| f.parse::<u64>().ok());
        if result_fence.is_some() && result_fence != fin.fence {
            report.violations.push(format!(
                "{id}: ack with a stale fence applied (result of fence {result_fence:?}, job \
                 fence {:?})",
                fin.fence
            ));
        }
    }
    if processed != completed {
        report.violations.push(format!(
            "{processed} acks applied for {completed} completed jobs: a job ended more than once"
        ));
    }
    // Every fire of a tick is counted in the schedule; a tick fired again finds its jobs
    // there (their ids are derived from the tick) and creates nothing, so only the count
    // shows it. Every fired tick's job ran (else it is lost above).
    if cron_fired != cron_ticks.len() as u64 {
        report.violations.push(format!(
            "the schedule counts {cron_fired} fired ticks, {} ticks ran: a tick fired more \
             than once",
            cron_ticks.len()
        ));
    }
    for (tick, ids) in &cron_ticks {
        if ids.len() > 1 {
            report.violations.push(format!(
                "cron tick {tick} fired {} jobs: {ids:?}",
                ids.len()
            ));
        }
    }
    for (index, n) in leftovers {
        if n > 0 {
            report
                .violations
                .push(format!("{n} jobs left in {index} after the run"));
        }
    }
    ends.sort_unstable();
    report.stall_ms = ends.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    for repair in repairs {
        let next = ends.iter().find(|&&e| e >= repair);
        if let Some(next) = next {
            report.recovery_ms = report.recovery_ms.max(next - repair);
        }
    }
    report
}

/// The raw lines of the history file.
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One critical section: (lock, lock fence, start ms, end ms), from `L` lines.
pub type Section = (String, u64, u64, u64);

pub fn lock_sections(lines: &[String]) -> Vec<Section> {
    lines
        .iter()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["L", lock, fence, start, end] => Some((
                    lock.to_string(),
                    fence.parse().ok()?,
                    start.parse().ok()?,
                    end.parse().ok()?,
                )),
                _ => None,
            }
        })
        .collect()
}

/// Pairs of sections of one lock that overlap in time, or whose fences do not grow in the
/// order they started (two holders inside a lock, or a holder that did not hold it).
pub fn lock_overlaps(sections: &[Section]) -> Vec<(Section, Section)> {
    let mut by_lock: BTreeMap<&str, Vec<&Section>> = BTreeMap::new();
    for s in sections {
        by_lock.entry(&s.0).or_default().push(s);
    }
    let mut bad = Vec::new();
    for (_, mut list) in by_lock {
        list.sort_by_key(|s| (s.2, s.1));
        for w in list.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b.2 < a.3 || b.1 <= a.1 {
                bad.push((a.clone(), b.clone()));
            }
        }
    }
    bad
}

#[test]
fn faults_checker_finds_overlapping_critical_sections_and_fences_out_of_order() {
    let s = |lock: &str, fence, start, end| (lock.to_owned(), fence, start, end);
    let clean = [s("a", 1, 0, 10), s("a", 2, 10, 20), s("b", 1, 5, 15)];
    assert!(lock_overlaps(&clean).is_empty());
    let overlapping = [s("a", 1, 0, 10), s("a", 2, 9, 20)];
    assert_eq!(lock_overlaps(&overlapping).len(), 1);
    let out_of_order = [s("a", 2, 0, 10), s("a", 1, 10, 20)];
    assert_eq!(lock_overlaps(&out_of_order).len(), 1);
}
