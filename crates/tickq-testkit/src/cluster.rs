//! A small Redis Cluster of primaries, one `redis-server` per node.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use crate::certs::TestCerts;
use crate::server::TestRedis;
use std::sync::Arc;

/// Fixed by the Redis Cluster specification.
const SLOTS: usize = 16_384;
/// Nodes become writable about 2 s after startup (Redis' `CLUSTER_WRITABLE_DELAY`); the
/// rest is headroom for slow CI machines.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);
const FORM_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Shorter than the default 15 s so that tests of a dead node see the cluster react
/// quickly, yet long enough that a busy CI machine does not cause false failure reports.
const NODE_TIMEOUT_MS: &str = "5000";

/// A Redis Cluster of primaries (and, if asked, one replica each) on free TCP ports of
/// 127.0.0.1.
///
/// Slots are split evenly between the nodes. [`start`](Self::start) returns once every
/// node reports `cluster_state:ok` and all nodes agree on who owns which slots. Dropping
/// it kills every node.
///
/// ```
/// use tickq_testkit::TestCluster;
///
/// let cluster = TestCluster::start(TestCluster::DEFAULT_PRIMARIES);
/// let mut conn = cluster.client().get_connection().unwrap();
/// redis::cmd("SET").arg("key").arg(1).exec(&mut conn).unwrap();
/// ```
#[derive(Debug)]
pub struct TestCluster {
    nodes: Vec<TestRedis>,
    primaries: usize,
    certs: Option<Arc<TestCerts>>,
}

impl TestCluster {
    /// The usual size: the smallest cluster in which a key's slot and a client's
    /// redirections are interesting and a majority survives one dead node.
    pub const DEFAULT_PRIMARIES: usize = 3;

    /// Starts `primaries` nodes, assigns slots, joins them, and waits until the cluster
    /// is formed. Takes about 2 seconds, most of it Redis' own startup delay.
    ///
    /// # Panics
    ///
    /// If `primaries` is 0 or more than 16384, if a node fails to start, or if the cluster
    /// is not formed within 10 seconds.
    pub fn start(primaries: usize) -> Self {
        Self::start_with(primaries, 0, None)
    }

    /// Like [`start`](Self::start), with one replica per primary, so that killing a primary
    /// ([`kill_node`](Self::kill_node)) makes the cluster fail over to its replica. Nodes
    /// `0..primaries` are the primaries; node `primaries + i` replicates primary `i`.
    /// Returns once every replica has synchronised with its primary.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), or if a replica does not synchronise within 10 seconds.
    pub fn start_with_replicas(primaries: usize) -> Self {
        Self::start_with(primaries, 1, None)
    }

    /// Like [`start`](Self::start), with every node serving TLS only (certificates of one
    /// private CA: [`certs`](Self::certs)), also on the cluster bus. [`urls`](Self::urls)
    /// are then `rediss://` and [`cluster_url`](Self::cluster_url) is `rediss-cluster://`;
    /// [`client`](Self::client) and [`conn`](Self::conn) do not work (they carry no CA), but
    /// each node's [`TestRedis::client`] does, over its plain unix socket.
    pub fn start_tls(primaries: usize) -> Self {
        Self::start_with(primaries, 0, Some(Arc::new(TestCerts::generate())))
    }

    fn start_with(primaries: usize, replicas: usize, certs: Option<Arc<TestCerts>>) -> Self {
        assert!(
            (1..=SLOTS).contains(&primaries),
            "a cluster needs between 1 and {SLOTS} primaries, not {primaries}"
        );
        let nodes =
            (0..primaries * (1 + replicas))
                .map(|i| {
                    let builder =
                        match &certs {
                            Some(certs) => TestRedis::builder()
                                .tls_with(certs.clone())
                                .extra_args(["--tls-cluster", "yes", "--tls-replication", "yes"]),
                            None => TestRedis::builder().tcp(),
                        };
                    builder
                        .cluster_bus()
                        .extra_args(["--cluster-enabled", "yes"])
                        // Relative to the node's directory, which redis-server runs in.
                        .extra_args([
                            "--cluster-config-file".to_owned(),
                            format!("nodes-{i}.conf"),
                        ])
                        .extra_args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
                        // Otherwise a node learns its own address from its peers, and until it
                        // does, CLUSTER SLOTS reports it with an empty IP.
                        .extra_args(["--cluster-announce-ip", "127.0.0.1"])
                        .start()
                })
                .collect();
        let cluster = Self {
            nodes,
            primaries,
            certs,
        };
        cluster.form();
        if replicas > 0 {
            cluster.attach_replicas();
        }
        cluster
    }

    /// Makes node `primaries + i` a replica of primary `i`, and waits until each is in sync.
    fn attach_replicas(&self) {
        for i in 0..self.primaries {
            let primary_id: String = query(&mut self.nodes[i].sync_conn(), &["MYID"])
                .unwrap_or_else(|err| panic!("CLUSTER MYID: {err}"));
            let replica = &self.nodes[self.primaries + i];
            cluster_cmd(&mut replica.sync_conn(), &["REPLICATE", &primary_id]);
        }
        let deadline = Instant::now() + FORM_TIMEOUT;
        for replica in &self.nodes[self.primaries..] {
            let mut conn = replica.sync_conn();
            loop {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut conn)
                    .unwrap_or_default();
                if info
                    .lines()
                    .any(|l| l.trim_end() == "master_link_status:up")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {} did not sync with its primary within {} s: {info}",
                    replica.url(),
                    FORM_TIMEOUT.as_secs()
                );
                thread::sleep(FORM_POLL_INTERVAL);
            }
        }
    }

    /// Waits until every replica has applied everything its primary has written, so a
    /// failover loses nothing written before this call.
    ///
    /// # Panics
    ///
    /// If a replica is not caught up within 10 seconds.
    pub fn wait_replicated(&self) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        for i in 0..self.nodes.len() - self.primaries {
            let offset = |node: &TestRedis, field: &str| -> Option<i64> {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut node.sync_conn())
                    .ok()?;
                info.lines()
                    .find_map(|l| l.trim_end().strip_prefix(field))
                    .and_then(|v| v.parse().ok())
            };
            let primary = &self.nodes[i % self.primaries];
            let replica = &self.nodes[self.primaries + i];
            loop {
                let want = offset(primary, "master_repl_offset:");
                let have = offset(replica, "slave_repl_offset:");
                if want.is_some() && want <= have {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {} not caught up: primary at {want:?}, replica at {have:?}",
                    replica.url()
                );
                thread::sleep(FORM_POLL_INTERVAL);
            }
        }
    }

    /// The private CA and certificates of a cluster started with
    /// [`start_tls`](Self::start_tls).
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_deref()
    }

    /// The nodes' URLs (`redis://127.0.0.1:PORT`, or `rediss://` over TLS), in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(TestRedis::url).collect()
    }

    /// The cluster as tickq names it: `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,...`
    /// (`rediss-cluster://` over TLS).
    pub fn cluster_url(&self) -> String {
        let hosts: Vec<String> = self
            .urls()
            .iter()
            .map(|u| {
                u.trim_start_matches("redis://")
                    .trim_start_matches("rediss://")
                    .trim_end_matches('/')
                    .to_owned()
            })
            .collect();
        let scheme = if self.certs.is_some() {
            "rediss-cluster"
        } else {
            "redis-cluster"
        };
        format!("{scheme}://{}", hosts.join(","))
    }

    /// Node `i`, for its URL, port or a direct connection.
    ///
    /// # Panics
    ///
    /// If there is no node `i`.
    pub fn node(&self, i: usize) -> &TestRedis {
        &self.nodes[i]
    }

    /// Node `i`, for fault injection: [`TestRedis::pause`], [`TestRedis::restart`], ….
    ///
    /// # Panics
    ///
    /// If there is no node `i`.
    pub fn node_mut(&mut self, i: usize) -> &mut TestRedis {
        &mut self.nodes[i]
    }

    /// Kills node `i` with `SIGKILL`. With no replicas, its slots stay unserved: after the
    /// node timeout (5 s) the other nodes mark it failed and the cluster reports
    /// `cluster_state:fail`. With replicas ([`start_with_replicas`](Self::start_with_replicas))
    /// its replica is promoted a few seconds after the node timeout and serves its slots. [`TestRedis::start_again`] on [`node_mut`](Self::node_mut)
    /// brings it back with its slots.
    ///
    /// # Panics
    ///
    /// If there is no node `i` or it is not running.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// The primary (by node index) that was given `slot` when the cluster formed: primary `i`
    /// of `n` holds slots `i * 16384 / n ..= (i + 1) * 16384 / n - 1`. After a failover the
    /// promoted replica serves the same range under the same index.
    pub fn slot_owner(&self, slot: u16) -> usize {
        let n = self.primaries;
        (0..n)
            .find(|i| usize::from(slot) < (i + 1) * SLOTS / n)
            .expect("every slot has an owner")
    }

    /// A cluster client seeded with every node's URL.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.urls())
            .expect("the testkit's URLs are valid for redis-rs")
    }

    /// A new async cluster connection. Needs a tokio runtime.
    ///
    /// # Panics
    ///
    /// If connecting fails.
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .unwrap_or_else(|err| panic!("connecting to the cluster {:?}: {err}", self.urls()))
    }

    fn form(&self) {
        let n = self.primaries;
        let mut conns: Vec<redis::Connection> =
            self.nodes.iter().map(TestRedis::sync_conn).collect();
        for (i, conn) in conns.iter_mut().enumerate() {
            // Distinct epochs before meeting, as `redis-cli --cluster create` does, so the
            // nodes need not resolve an epoch collision before they agree.
            cluster_cmd(conn, &["SET-CONFIG-EPOCH", &(i + 1).to_string()]);
            if i >= self.primaries {
                continue; // a replica-to-be holds no slots
            }
            let first = i * SLOTS / n;
            let last = (i + 1) * SLOTS / n - 1;
            cluster_cmd(
                conn,
                &["ADDSLOTSRANGE", &first.to_string(), &last.to_string()],
            );
        }
        // Every pair meets directly rather than through gossip, which takes longer.
        for (i, conn) in conns.iter_mut().enumerate() {
            for peer in &self.nodes[i + 1..] {
                let port = peer.port().expect("cluster nodes listen on TCP");
                cluster_cmd(conn, &["MEET", "127.0.0.1", &port.to_string()]);
            }
        }

        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let problem = match self.agreed_view(&mut conns) {
                Ok(()) => return,
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                panic!(
                    "Redis Cluster {:?} not formed within {} s: {problem}",
                    self.urls(),
                    FORM_TIMEOUT.as_secs()
                );
            }
            thread::sleep(FORM_POLL_INTERVAL);
        }
    }

    /// Ok when every node reports `cluster_state:ok` and sees the same healthy nodes
    /// owning the same slots; otherwise the first thing found amiss.
    fn agreed_view(&self, conns: &mut [redis::Connection]) -> Result<(), String> {
        let mut first_view: Option<ClusterView> = None;
        for (i, conn) in conns.iter_mut().enumerate() {
            let node = || format!("node {i} ({})", self.nodes[i].url());
            let info: String =
                query(conn, &["INFO"]).map_err(|err| format!("{}: {err}", node()))?;
            if !info
                .lines()
                .any(|line| line.trim_end() == "cluster_state:ok")
            {
                return Err(format!("{} does not report cluster_state:ok", node()));
            }
            let nodes: String =
                query(conn, &["NODES"]).map_err(|err| format!("{}: {err}", node()))?;
            let view = parse_cluster_nodes(&nodes).map_err(|err| format!("{}: {err}", node()))?;
            if view.len() != self.nodes.len() {
                return Err(format!(
                    "{} knows {} of {} nodes",
                    node(),
                    view.len(),
                    self.nodes.len()
                ));
            }
            match &first_view {
                None => first_view = Some(view),
                Some(first) if *first != view => {
                    return Err(format!("{} disagrees with node 0 on the slot map", node()));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Node id → (address, slot ranges) as one node sees the cluster.
type ClusterView = BTreeMap<String, (String, Vec<String>)>;

/// Parses `CLUSTER NODES`, rejecting nodes that are not (yet) healthy.
///
/// Line format: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
/// <config-epoch> <link-state> <slot> <slot> ...`
fn parse_cluster_nodes(text: &str) -> Result<ClusterView, String> {
    let mut view = ClusterView::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, addr, flags, _, _, _, _, link, slots @ ..] = fields.as_slice() else {
            return Err(format!("unexpected CLUSTER NODES line: {line:?}"));
        };
        let unhealthy = ["fail", "fail?", "handshake", "noaddr"];
        if let Some(flag) = flags.split(',').find(|flag| unhealthy.contains(flag)) {
            return Err(format!("node {id} is flagged {flag}"));
        }
        if *link != "connected" {
            return Err(format!("node {id} link is {link}"));
        }
        let addr = addr.split(['@', ',']).next().unwrap_or(addr);
        let slots = slots.iter().map(|slot| (*slot).to_owned()).collect();
        view.insert((*id).to_owned(), (addr.to_owned(), slots));
    }
    Ok(view)
}

fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<String> {
    redis::cmd("CLUSTER").arg(args).query(conn)
}

fn cluster_cmd(conn: &mut redis::Connection, args: &[&str]) {
    redis::cmd("CLUSTER")
        .arg(args)
        .exec(conn)
        .unwrap_or_else(|err| panic!("CLUSTER {}: {err}", args.join(" ")));
}
