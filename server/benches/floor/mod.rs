//! The floor under watch fan-out on this machine: the connections, bytes
//! and events of a fan-out run, sent by the plainest server tokio allows
//! (a task per connection writing raw bytes when its bell rings: no
//! HTTP/2, no gRPC, no store, no auth) in a process of its own, and read
//! by the plainest clients. hotfixd's figures are reported as ratios to it.
//!
//! The server is this bench binary started again with [`SERVE`] set; the
//! bench drives it over a control connection, one 8-byte commit time (ns
//! since the epoch) per event.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::cpu_time;

/// Set (to `FRAME:PER_CONNECTION`) in the server process's environment.
pub const SERVE: &str = "HOTFIXD_BENCH_FLOOR_SERVE";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Runs the floor's server and returns true if this process was started
/// as it; false otherwise.
pub fn serve_if_asked() -> bool {
    let Ok(spec) = std::env::var(SERVE) else {
        return false;
    };
    let (frame, per_conn) = spec
        .split_once(':')
        .and_then(|(f, p)| Some((f.parse().ok()?, p.parse().ok()?)))
        .unwrap_or_else(|| panic!("{SERVE}={spec:?}: expected FRAME:PER_CONNECTION"));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(serve(frame, per_conn));
    true
}

/// Each event: every connection gets `per_conn` frames of `frame` bytes in
/// one write, each frame starting with the commit time. Bells are rung
/// connection by connection, as hotfixd's are.
async fn serve(frame: usize, per_conn: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    let (mut control, _) = listener.accept().await.unwrap();
    let bells: Arc<Mutex<Vec<watch::Sender<u64>>>> = Arc::default();
    tokio::spawn({
        let bells = bells.clone();
        async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                conn.set_nodelay(true).unwrap();
                let (bell, mut rung) = watch::channel(0);
                bells.lock().unwrap().push(bell);
                tokio::spawn(async move {
                    let mut out = vec![0u8; frame * per_conn];
                    while rung.changed().await.is_ok() {
                        let at = rung.borrow_and_update().to_le_bytes();
                        for f in out.chunks_mut(frame) {
                            f[..8].copy_from_slice(&at);
                        }
                        if conn.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    let mut at = [0u8; 8];
    // The bench closing the control connection ends the run.
    while control.read_exact(&mut at).await.is_ok() {
        for bell in bells.lock().unwrap().iter() {
            let _ = bell.send(u64::from_le_bytes(at));
        }
    }
}

pub struct Figures {
    /// Sorted, one per frame received.
    pub delays: Vec<Duration>,
    pub server_cpu: Duration,
    pub clients_cpu: Duration,
}

/// `connections` connections, `events` events `gap` apart, each bringing
/// `per_conn` frames of `frame` bytes to every connection.
pub async fn run(
    connections: usize,
    per_conn: usize,
    frame: usize,
    events: usize,
    gap: Duration,
) -> Figures {
    let mut server = Command::new(std::env::current_exe().unwrap())
        .env(SERVE, format!("{frame}:{per_conn}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the floor's server");
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    assert!(!port.trim().is_empty(), "the floor's server did not start");
    let addr = format!("127.0.0.1:{}", port.trim());
    let mut control = TcpStream::connect(&addr).await.unwrap();
    control.set_nodelay(true).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        conn.set_nodelay(true).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(events * per_conn);
            let mut buf = vec![0u8; frame * per_conn];
            for _ in 0..events {
                conn.read_exact(&mut buf).await.unwrap();
                let now = now_ns();
                for f in buf.chunks(frame) {
                    let at = u64::from_le_bytes(f[..8].try_into().unwrap());
                    delays.push(Duration::from_nanos(now.saturating_sub(at)));
                }
            }
            delays
        }));
    }
    // Let the server take every connection before the first event.
    tokio::time::sleep(Duration::from_millis(500 + connections as u64 / 10)).await;
    let pid = server.id().to_string();
    let cpu = (cpu_time(&pid), cpu_time("self"));
    for _ in 0..events {
        control.write_all(&now_ns().to_le_bytes()).await.unwrap();
        tokio::time::sleep(gap).await;
    }
    let mut delays = Vec::with_capacity(connections * per_conn * events);
    for t in tasks {
        delays.extend(t.await.unwrap());
    }
    let (server_cpu, clients_cpu) = (cpu_time(&pid) - cpu.0, cpu_time("self") - cpu.1);
    delays.sort();
    drop(control);
    let _ = server.wait();
    Figures {
        delays,
        server_cpu,
        clients_cpu,
    }
}
