//! A loopback TCP proxy between one node and Redis that the harness controls: pass, add
//! latency, hold everything (a blackhole that keeps the connections open: to the node they
//! look half-open), or reset every connection (mid-reply, whatever is in flight).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const PASS: u8 = 0;
const DELAY: u8 = 1;
const HOLD: u8 = 2;

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    delay_ms: Arc<AtomicU64>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (m, d, c) = (mode.clone(), delay_ms.clone(), conns.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut conns = c.lock().unwrap();
                    conns.push(client.try_clone().unwrap());
                    conns.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (m, d) = (m.clone(), d.clone());
                    thread::spawn(move || pump(from, to, &m, &d));
                }
            }
        });
        Proxy {
            port,
            mode,
            delay_ms,
            conns,
        }
    }

    pub fn pass(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
    }

    /// Every chunk waits `ms` before it is passed on (both directions).
    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
        self.mode.store(DELAY, Ordering::SeqCst);
    }

    /// Nothing passes until [`pass`](Self::pass); the connections stay open.
    pub fn hold(&self) {
        self.mode.store(HOLD, Ordering::SeqCst);
    }

    /// Close every connection now, in both directions, whatever is in flight.
    pub fn reset(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, mode: &AtomicU8, delay_ms: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            match mode.load(Ordering::SeqCst) {
                HOLD => thread::sleep(Duration::from_millis(5)),
                DELAY => {
                    thread::sleep(Duration::from_millis(delay_ms.load(Ordering::SeqCst)));
                    break;
                }
                _ => break,
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
