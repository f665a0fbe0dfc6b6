//! A small Redis Cluster, one `redis-server` per node: primaries only, or primaries with a
//! replica each for failover tests.

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
/// With replicas, failover tests want a dead primary replaced quickly: a replica starts its
/// election about one node timeout after the primary stops answering.
const REPLICATED_NODE_TIMEOUT_MS: &str = "2000";
/// A promotion (forced with `CLUSTER FAILOVER`, or after a primary died) takes a node timeout
/// or so, plus an election; the rest is headroom for slow CI machines.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster on free TCP ports of 127.0.0.1: primaries only
/// ([`start`](Self::start)), or with a replica each
/// ([`start_with_replicas`](Self::start_with_replicas)).
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
    certs: Option<Arc<TestCerts>>,
    /// How many of `nodes` were started as primaries (the first ones); the others were
    /// started as replicas, replica `primaries + i` of primary `i`.
    primaries: usize,
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
        Self::start_with(primaries, None)
    }

    /// Like [`start`](Self::start), with every node serving TLS only (certificates of one
    /// private CA: [`certs`](Self::certs)), also on the cluster bus. [`urls`](Self::urls)
    /// are then `rediss://` and [`cluster_url`](Self::cluster_url) is `rediss-cluster://`;
    /// [`client`](Self::client) and [`conn`](Self::conn) do not work (they carry no CA), but
    /// each node's [`TestRedis::client`] does, over its plain unix socket.
    pub fn start_tls(primaries: usize) -> Self {
        Self::start_with(primaries, Some(Arc::new(TestCerts::generate())))
    }

    /// Like [`start`](Self::start), and then one replica per primary: node `primaries + i`
    /// replicates node `i`. The node timeout is 2 s, so that a dead primary is replaced
    /// within a few seconds. Returns once every replica's link to its primary is up. A dead
    /// primary's replica is elected only by a majority of the primaries: with 3 primaries,
    /// one may die; with 2, none.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), or if a replica does not catch up within 10 seconds.
    pub fn start_with_replicas(primaries: usize) -> Self {
        let mut cluster = Self::start_nodes(primaries * 2, None, REPLICATED_NODE_TIMEOUT_MS);
        cluster.primaries = primaries;
        cluster.form();
        cluster.attach_replicas();
        cluster
    }

    fn start_with(primaries: usize, certs: Option<Arc<TestCerts>>) -> Self {
        let cluster = Self::start_nodes(primaries, certs, NODE_TIMEOUT_MS);
        cluster.form();
        cluster
    }

    fn start_nodes(n: usize, certs: Option<Arc<TestCerts>>, node_timeout_ms: &str) -> Self {
        let primaries = n;
        assert!(
            (1..=SLOTS).contains(&primaries),
            "a cluster needs between 1 and {SLOTS} primaries, not {primaries}"
        );
        let nodes =
            (0..n)
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
                        .extra_args(["--cluster-node-timeout", node_timeout_ms])
                        // Otherwise a node learns its own address from its peers, and until it
                        // does, CLUSTER SLOTS reports it with an empty IP.
                        .extra_args(["--cluster-announce-ip", "127.0.0.1"])
                        .start()
                })
                .collect();
        Self {
            nodes,
            certs,
            primaries,
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
    /// `cluster_state:fail`. A primary with a replica is replaced by it a few seconds later
    /// ([`wait_for_primary`](Self::wait_for_primary) on the replica waits for that). [`TestRedis::start_again`] on [`node_mut`](Self::node_mut)
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

    /// Node `i`'s replication role as it reports it: `"master"` or `"slave"`.
    ///
    /// # Panics
    ///
    /// If there is no node `i` or it does not answer.
    pub fn role(&self, i: usize) -> String {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.nodes[i].sync_conn())
            .unwrap_or_else(|err| panic!("INFO replication on node {i}: {err}"));
        info_field(&info, "role").unwrap_or_default()
    }

    /// The node that replicates node `primary` (started with
    /// [`start_with_replicas`](Self::start_with_replicas)); after a failover, the old primary.
    ///
    /// # Panics
    ///
    /// If no running node replicates it.
    pub fn replica_of(&self, primary: usize) -> usize {
        let id = self.node_id(primary);
        (0..self.nodes.len())
            .filter(|&i| i != primary && self.nodes[i].is_running())
            .find(|&i| {
                let nodes: String = query(&mut self.nodes[i].sync_conn(), &["NODES"])
                    .unwrap_or_else(|err| panic!("CLUSTER NODES on node {i}: {err}"));
                nodes.lines().any(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.len() > 3 && fields[2].contains("myself") && fields[3] == id
                })
            })
            .unwrap_or_else(|| panic!("no running node replicates node {primary}"))
    }

    /// Promotes replica `replica` with `CLUSTER FAILOVER` (the coordinated kind: its primary
    /// stops taking writes, the replica catches up, then takes over) and waits until the
    /// promotion is done: see [`wait_for_primary`](Self::wait_for_primary).
    ///
    /// # Panics
    ///
    /// If the node refuses, or the promotion is not done within 30 seconds.
    pub fn failover(&self, replica: usize) {
        self.failover_with(replica, None);
    }

    /// Like [`failover`](Self::failover) with `CLUSTER FAILOVER FORCE`: the replica takes
    /// over without its primary's agreement (which needs no answer from it), as after a
    /// partition; writes the old primary took after the replica's last sync are lost.
    pub fn force_failover(&self, replica: usize) {
        self.failover_with(replica, Some("FORCE"));
    }

    fn failover_with(&self, replica: usize, option: Option<&str>) {
        let mut args = vec!["FAILOVER"];
        args.extend(option);
        cluster_cmd(&mut self.nodes[replica].sync_conn(), &args);
        self.wait_for_primary(replica);
    }

    /// Waits until node `i` is a primary with slots and every running node reports
    /// `cluster_state:ok` and names `i` the owner of those slots: after a forced failover, or
    /// after its primary was killed and the replica elected itself.
    ///
    /// # Panics
    ///
    /// If that does not happen within 30 seconds.
    pub fn wait_for_primary(&self, i: usize) {
        let id = self.node_id(i);
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        loop {
            let problem = match self.owns_slots_everywhere(&id) {
                Ok(()) => return,
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                panic!(
                    "node {i} ({}) did not become a primary within {} s: {problem}",
                    self.nodes[i].url(),
                    FAILOVER_TIMEOUT.as_secs()
                );
            }
            thread::sleep(FORM_POLL_INTERVAL);
        }
    }

    fn owns_slots_everywhere(&self, id: &str) -> Result<(), String> {
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let mut conn = node.sync_conn();
            let info: String = query(&mut conn, &["INFO"]).map_err(|e| format!("node {i}: {e}"))?;
            if !info
                .lines()
                .any(|line| line.trim_end() == "cluster_state:ok")
            {
                return Err(format!("node {i} does not report cluster_state:ok"));
            }
            let nodes: String =
                query(&mut conn, &["NODES"]).map_err(|e| format!("node {i}: {e}"))?;
            let owns = nodes.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.first() == Some(&id)
                    && fields.get(2).is_some_and(|f| f.contains("master"))
                    && fields.len() > 8
            });
            if !owns {
                return Err(format!(
                    "node {i} does not yet see it as a primary with slots"
                ));
            }
        }
        Ok(())
    }

    fn node_id(&self, i: usize) -> String {
        query(&mut self.nodes[i].sync_conn(), &["MYID"])
            .unwrap_or_else(|err| panic!("CLUSTER MYID on node {i}: {err}"))
    }

    /// Makes node `primaries + i` a replica of node `i`, and waits until each has synced.
    fn attach_replicas(&self) {
        for i in 0..self.primaries {
            let id = self.node_id(i);
            cluster_cmd(
                &mut self.nodes[self.primaries + i].sync_conn(),
                &["REPLICATE", &id],
            );
        }
        let deadline = Instant::now() + FORM_TIMEOUT;
        for replica in self.primaries..self.nodes.len() {
            loop {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut self.nodes[replica].sync_conn())
                    .unwrap_or_default();
                if info_field(&info, "master_link_status").as_deref() == Some("up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {replica} did not sync with its primary within {} s",
                    FORM_TIMEOUT.as_secs()
                );
                thread::sleep(FORM_POLL_INTERVAL);
            }
        }
        let mut conns: Vec<redis::Connection> =
            self.nodes.iter().map(TestRedis::sync_conn).collect();
        let deadline = Instant::now() + FORM_TIMEOUT;
        while let Err(problem) = self.agreed_view(&mut conns) {
            assert!(
                Instant::now() < deadline,
                "Redis Cluster {:?} with replicas not agreed within {} s: {problem}",
                self.urls(),
                FORM_TIMEOUT.as_secs()
            );
            thread::sleep(FORM_POLL_INTERVAL);
        }
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
        for (i, conn) in conns.iter_mut().take(n).enumerate() {
            let first = i * SLOTS / n;
            let last = (i + 1) * SLOTS / n - 1;
            cluster_cmd(
                conn,
                &["ADDSLOTSRANGE", &first.to_string(), &last.to_string()],
            );
            // Distinct epochs before meeting, as `redis-cli --cluster create` does, so the
            // nodes need not resolve an epoch collision before they agree.
            cluster_cmd(conn, &["SET-CONFIG-EPOCH", &(i + 1).to_string()]);
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

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
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
