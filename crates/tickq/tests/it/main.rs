//! The library's integration tests: real redis-servers (and, for faults, real worker
//! processes). One test binary with a module per concern (ripgrep's layout), so the suite
//! links once:
mod admin; // the admin core: bulk actions
mod big_db; // admin calls on a database of 300,000 jobs, each reply within 500 ms
mod bulk; // enqueue_bulk at scale: a million jobs, a call cut off part way and retried
mod cluster; // a real local Redis Cluster: jobs, schedules, locks, limits
mod common; // helpers: polling, spawned workers, child worker processes
mod faults; // kill -9, zombie acks, Redis restarts and stalls, corrupt jobs
mod flows; // workflows on real workers: the fan-in race, results, failure policies
mod limits; // concurrency and rate limits across workers
mod lock; // locks: exclusion, renewal, the lost signal, fencing
mod redis_full; // Redis at maxmemory: new jobs refused, accepted ones drained
mod schedule; // leaderless cron across nodes: ticks once, catch-up, overlap, spread, skew
mod sentinel; // following a Sentinel failover
mod shards; // sharded queues on one Redis and over every master of a cluster
mod smoke; // the quick tour end to end
mod worker; // the worker runtime: outcomes, timeouts, shutdown, spreading
