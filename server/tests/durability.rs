//! Durable means synced, not only written: the real `hotfixd` binary runs
//! under `strace`, one client declares hotfixes one after the other, and
//! every answer's `writev` to the client's socket must come after an
//! `fdatasync`/`fsync` of the store's log file (`DATA/db`) that finished
//! after the answer before it. sled's own flush ends with
//! `sync_file_range`, which promises nothing on power loss; its periodic
//! `fsync` comes hundreds of milliseconds later, so without hotfixd's own
//! sync most answers here have none before them.
//!
//! Needs `strace` (Debian's; `scripts/test` installs it). Set
//! `HOTFIXD_TEST_STRACE` to use another binary.

mod harness;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use harness::{Binary, HOTFIXD, free_port};

const DECLARATIONS: usize = 20;

fn strace() -> String {
    std::env::var("HOTFIXD_TEST_STRACE").unwrap_or_else(|_| "strace".into())
}

/// One finished system call of the trace, in the order strace saw them end.
#[derive(Debug)]
struct Call {
    name: String,
    /// The descriptor as `strace -yy` decorates it, e.g. `7</tmp/x/db>`.
    fd: String,
    /// Everything after the descriptor (arguments and result).
    rest: String,
}

/// Parses `strace -f -yy` output, joining `<unfinished ...>` and
/// `<... NAME resumed>` halves by process id; a call counts where it ended.
fn parse(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let (pid, body) = match line.strip_prefix("[pid ") {
            Some(r) => {
                let (pid, body) = r.split_once("] ").unwrap_or((r, ""));
                (pid.trim().to_string(), body.to_string())
            }
            None => match line.split_once(' ') {
                Some((pid, body)) if pid.chars().all(|c| c.is_ascii_digit()) => {
                    (pid.to_string(), body.to_string())
                }
                _ => (String::new(), line.to_string()),
            },
        };
        // strace pads the pid to a width of 5.
        let body = body.trim_start().to_string();
        let full = if let Some(start) = body.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, start.to_string());
            continue;
        } else if body.starts_with("<... ") {
            let Some((_, after)) = body.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(&pid) {
                Some(start) => format!("{start}{after}"),
                None => continue,
            }
        } else {
            body
        };
        let Some((name, args)) = full.split_once('(') else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let (fd, rest) = match args.find(">, ").or_else(|| args.find(">)")) {
            Some(i) => (args[..=i].to_string(), args[i + 1..].to_string()),
            None => (String::new(), args.to_string()),
        };
        calls.push(Call {
            name: name.to_string(),
            fd,
            rest,
        });
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_follows_an_fdatasync_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hotfixd.toml");
    std::fs::write(
        &config,
        "[policy]\nrate_window_max = 1000000\nquarter_process_bug_over = 1000000\n\
         quarter_code_yellow_over = 1000000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let trace_file = dir.path().join("trace");
    let port = free_port();
    let probe = Command::new(strace())
        .arg("-V")
        .stdout(Stdio::null())
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs strace (apt-get install strace, or run scripts/test, which installs it)"
    );
    let mut cmd = Command::new(strace());
    cmd.args(["-f", "-qq", "-yy", "-s", "512"])
        .args(["-e", "trace=fdatasync,fsync,sync_file_range,writev"])
        .arg("-o")
        .arg(&trace_file)
        .arg(HOTFIXD);
    let d = Binary::spawn_command(cmd, &config, &data, port, &[])
        .ready()
        .await;

    for i in 1..=DECLARATIONS {
        let inc = format!("INC-2026-05-20-{i:03}");
        d.ctl("bob", &harness::declare_args(&inc, "bookstore/catalog"))
            .await
            .expect("declared");
    }
    // strace writes its trace through a buffer: stop hotfixd (its tracee)
    // cleanly so that strace exits on its own and writes all of it.
    let strace_pid = d.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let hotfixd_pid = children
        .split_whitespace()
        .next()
        .expect("hotfixd under strace");
    let killed = Command::new("kill")
        .args(["-TERM", hotfixd_pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut d = d;
    let status = d.child.wait().unwrap();
    assert!(
        status.success(),
        "strace and hotfixd exited cleanly: {status}"
    );
    drop(d);

    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let store_log = format!("{}>", data.join("db").display());
    let calls = parse(&trace);
    let mut synced = false;
    let mut answered = 0;
    let mut unsynced = Vec::new();
    for c in &calls {
        match c.name.as_str() {
            "fdatasync" | "fsync" if c.fd.ends_with(&store_log) && c.rest.ends_with("= 0") => {
                synced = true;
            }
            "writev" if c.fd.contains("TCP") => {
                // The answer to declaration i names its incident.
                if let Some(i) =
                    (1..=DECLARATIONS).find(|i| c.rest.contains(&format!("INC-2026-05-20-{i:03}")))
                    && i == answered + 1
                {
                    if !synced {
                        unsynced.push(i);
                    }
                    answered = i;
                    synced = false;
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        answered,
        DECLARATIONS,
        "every answer was found in the trace ({} calls traced)",
        calls.len()
    );
    assert!(
        unsynced.is_empty(),
        "declarations answered with no fdatasync/fsync of {} since the answer before: {unsynced:?}",
        data.join("db").display()
    );
}

#[test]
fn the_trace_parser_joins_unfinished_calls() {
    let calls = parse(
        "12 fdatasync(7</d/db> <unfinished ...>\n\
         13 writev(9<TCP:[127.0.0.1:1->127.0.0.1:2]>, [{iov_base=\"x\", iov_len=1}], 1) = 1\n\
         12 <... fdatasync resumed>) = 0\n\
         812  fsync(7</d/db>) = 0\n",
    );
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].name, "fsync");
    assert_eq!(calls[0].name, "writev");
    assert_eq!(calls[1].name, "fdatasync");
    assert_eq!(calls[1].fd, "7</d/db>");
    assert!(calls[1].rest.ends_with("= 0"), "{:?}", calls[1]);
}
