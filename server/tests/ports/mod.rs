//! Free loopback ports, for the processes the tests start (hotfixd, etcd).

/// A port free on 127.0.0.1 right now (the OS's pick).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
