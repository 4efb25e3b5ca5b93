//! `hush bench e2e`: end-to-end throughput of two `hush node` processes on loopback.
//!
//! Contract: for each round, mode and build (builds alternate within a round, so that two
//! builds compared share the box's state of the moment), one trial starts a receiver R
//! (`--json`, listening on 127.0.0.1) and a sender S (`--peer R`) from that build's binary in
//! fresh data directories, waits for both handshakes, sends one warm-up message (first contact,
//! X3DH for `/dm`) and waits for it, then writes `--messages` lines to S's stdin keeping at most
//! `--window` of them in flight (sent, not yet printed by R; 0 = all at once, as a pipe), and
//! counts the distinct messages R prints. The trial ends when all arrived, or when none arrived
//! for `--stall-secs` (the rest count as lost). It reports:
//! - msg/s = messages delivered / (last delivery − first line written);
//! - CPU µs/msg of S and of R = (utime + stime of the process over that interval, from
//!   `/proc/PID/stat`) / messages delivered;
//! - `store_commits` per message of S and R when the build reports it in `/stats` (each store
//!   transaction is one WAL fsync);
//! - with `--fsyncs`, one more trial per mode and build under `strace -f` (only fsync and
//!   fdatasync traced, `--seccomp-bpf`, so other syscalls run at full speed) that counts the
//!   calls made between the first line and the last delivery, per message. That trial's
//!   throughput is not reported (tracing slows every fsync).
//!
//! Modes: `public` (`/send`, both nodes `--join bench`), `dm` (`/dm R-key`), `dm-datasync`
//! (`/dm` with `--datasync` on both nodes). Nothing here knows the protocol: it only runs
//! processes and reads their output.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

/// Public chat the bench posts to.
pub const BENCH_CHAT: &str = "bench";

/// Prefix of every bench message text (`bench-<index>`).
pub const TEXT_PREFIX: &str = "bench-";

/// How long a node gets to print its enode and complete its handshakes, s.
pub const STARTUP_TIMEOUT_SECS: u64 = 60;

/// Sleep of the feeder while the window is full, ms.
const WINDOW_POLL_MS: u64 = 1;

/// What the bench measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Mode {
    /// Public chat `/send`.
    Public,
    /// 1:1 `/dm`.
    Dm,
    /// 1:1 `/dm` with `--datasync` (MVDS) on both nodes.
    DmDatasync,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Public => "public",
            Mode::Dm => "dm",
            Mode::DmDatasync => "dm-datasync",
        }
    }

    fn node_args(self) -> &'static [&'static str] {
        match self {
            Mode::Public => &["--join", BENCH_CHAT],
            Mode::Dm => &[],
            Mode::DmDatasync => &["--datasync"],
        }
    }

    fn line(self, receiver_key: &str, text: &str) -> String {
        match self {
            Mode::Public => format!("/send {BENCH_CHAT} {text}\n"),
            Mode::Dm | Mode::DmDatasync => format!("/dm {receiver_key} {text}\n"),
        }
    }
}

/// `hush bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which bench.
    #[command(subcommand)]
    pub which: BenchCmd,
}

/// The benches.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCmd {
    /// Two `hush node` processes on loopback: msg/s, CPU µs/msg, fsyncs/msg.
    E2e(E2eArgs),
}

/// `hush bench e2e`.
#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    /// The build measured first in each round (default: this binary).
    #[arg(long, value_name = "PATH")]
    pub bin_a: Option<PathBuf>,
    /// A second build, measured right after the first in each round (e.g. today's build as
    /// --bin-a and the new one as --bin-b); ratios B/A are printed.
    #[arg(long, value_name = "PATH")]
    pub bin_b: Option<PathBuf>,
    /// Label of --bin-a in the report.
    #[arg(long, default_value = "a")]
    pub label_a: String,
    /// Label of --bin-b in the report.
    #[arg(long, default_value = "b")]
    pub label_b: String,
    /// Modes to run (repeatable; default all three).
    #[arg(long = "mode", value_enum)]
    pub modes: Vec<Mode>,
    /// Messages per trial (at least 1).
    #[arg(long, default_value_t = 2000,
          value_parser = crate::cli::parse_at_least(1usize, "a trial without messages measures nothing"))]
    pub messages: usize,
    /// Messages in flight at most (sent, not yet received); 0 = write them all at once.
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
    /// Trials per mode and build (alternating builds; at least 1).
    #[arg(long, default_value_t = 3,
          value_parser = crate::cli::parse_at_least(1usize, "no trial would run"))]
    pub rounds: usize,
    /// A trial ends when no message arrived for this long; the rest are lost (at least 1).
    #[arg(long, default_value_t = 30,
          value_parser = crate::cli::parse_at_least(1u64, "every trial would end at once"))]
    pub stall_secs: u64,
    /// Also count fsync/fdatasync calls per message with strace (one extra trial per mode and
    /// build).
    #[arg(long)]
    pub fsyncs: bool,
    /// Keep the nodes' data directories (printed) instead of removing them.
    #[arg(long)]
    pub keep: bool,
    /// Print both nodes' `/stats` answers after each trial.
    #[arg(long)]
    pub show_stats: bool,
}

/// One build under test.
#[derive(Clone, Debug)]
struct Build {
    label: String,
    bin: PathBuf,
}

/// What one trial measured.
#[derive(Clone, Debug, Default)]
struct Trial {
    delivered: usize,
    elapsed_secs: f64,
    sender_cpu_secs: f64,
    receiver_cpu_secs: f64,
    sender_commits: Option<u64>,
    receiver_commits: Option<u64>,
    sender_fsyncs: Option<u64>,
    receiver_fsyncs: Option<u64>,
    /// The `/stats` answers of S and R.
    stats: [Option<String>; 2],
}

impl Trial {
    fn msg_per_sec(&self) -> f64 {
        self.delivered as f64 / self.elapsed_secs.max(1e-9)
    }
    fn per_msg(&self, x: f64) -> f64 {
        x / (self.delivered.max(1) as f64)
    }
}

/// Runs `hush bench e2e`.
pub fn run_e2e(args: &E2eArgs) -> anyhow::Result<()> {
    let this = std::env::current_exe().context("locating this binary")?;
    let mut builds = vec![Build {
        label: args.label_a.clone(),
        bin: args.bin_a.clone().unwrap_or(this),
    }];
    if let Some(b) = &args.bin_b {
        builds.push(Build {
            label: args.label_b.clone(),
            bin: b.clone(),
        });
    }
    for b in &builds {
        if !b.bin.is_file() {
            bail!("{}: no such binary ({})", b.bin.display(), b.label);
        }
    }
    let modes = if args.modes.is_empty() {
        vec![Mode::Public, Mode::Dm, Mode::DmDatasync]
    } else {
        args.modes.clone()
    };
    let ticks = clock_ticks_per_sec();
    println!(
        "hush bench e2e: messages={} window={} rounds={} stall_secs={} builds: {}",
        args.messages,
        args.window,
        args.rounds,
        args.stall_secs,
        builds
            .iter()
            .map(|b| format!("{}={}", b.label, b.bin.display()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<12} {:<8} {:>5} {:>9} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "mode", "build", "round", "msg/s", "lost", "S cpu µs", "R cpu µs", "S commits", "R commits"
    );
    let mut results: Vec<(Mode, usize, Trial)> = Vec::new();
    for round in 0..args.rounds {
        for &mode in &modes {
            for (bi, build) in builds.iter().enumerate() {
                let t = trial(args, build, mode, ticks, false)
                    .with_context(|| format!("{} {} round {round}", mode.name(), build.label))?;
                println!(
                    "{:<12} {:<8} {:>5} {:>9.0} {:>6} {:>10.1} {:>10.1} {:>10} {:>10}",
                    mode.name(),
                    build.label,
                    round,
                    t.msg_per_sec(),
                    args.messages - t.delivered,
                    t.per_msg(t.sender_cpu_secs) * 1e6,
                    t.per_msg(t.receiver_cpu_secs) * 1e6,
                    per_msg_opt(&t, t.sender_commits),
                    per_msg_opt(&t, t.receiver_commits),
                );
                if args.show_stats {
                    for (who, line) in ["S", "R"].iter().zip(&t.stats) {
                        println!("  {who}: {}", line.as_deref().unwrap_or("-"));
                    }
                }
                results.push((mode, bi, t));
            }
        }
    }
    let mut fsyncs: Vec<(Mode, usize, Trial)> = Vec::new();
    if args.fsyncs {
        for &mode in &modes {
            for (bi, build) in builds.iter().enumerate() {
                let t = trial(args, build, mode, ticks, true).with_context(|| {
                    format!("{} {} (strace, fsync count)", mode.name(), build.label)
                })?;
                fsyncs.push((mode, bi, t));
            }
        }
    }
    println!();
    println!("medians over {} round(s):", args.rounds);
    println!(
        "{:<12} {:<8} {:>9} {:>6} {:>10} {:>10} {:>12} {:>12}",
        "mode", "build", "msg/s", "lost", "S cpu µs", "R cpu µs", "S fsync/msg", "R fsync/msg"
    );
    for &mode in &modes {
        let mut medians = Vec::new();
        for (bi, build) in builds.iter().enumerate() {
            let trials: Vec<&Trial> = results
                .iter()
                .filter(|(m, b, _)| *m == mode && *b == bi)
                .map(|(_, _, t)| t)
                .collect();
            let rate = median(trials.iter().map(|t| t.msg_per_sec()));
            let lost = trials
                .iter()
                .map(|t| args.messages - t.delivered)
                .max()
                .unwrap_or(0);
            let s_cpu = median(trials.iter().map(|t| t.per_msg(t.sender_cpu_secs) * 1e6));
            let r_cpu = median(trials.iter().map(|t| t.per_msg(t.receiver_cpu_secs) * 1e6));
            let f = fsyncs.iter().find(|(m, b, _)| *m == mode && *b == bi);
            let s_f = f
                .and_then(|(_, _, t)| {
                    t.sender_fsyncs
                        .map(|n| format!("{:.3}", t.per_msg(n as f64)))
                })
                .unwrap_or_else(|| "-".into());
            let r_f = f
                .and_then(|(_, _, t)| {
                    t.receiver_fsyncs
                        .map(|n| format!("{:.3}", t.per_msg(n as f64)))
                })
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<12} {:<8} {:>9.0} {:>6} {:>10.1} {:>10.1} {:>12} {:>12}",
                mode.name(),
                build.label,
                rate,
                lost,
                s_cpu,
                r_cpu,
                s_f,
                r_f
            );
            medians.push((rate, s_cpu, r_cpu));
        }
        if let [(ra, sa, rca), (rb, sb, rcb)] = medians.as_slice() {
            if *ra <= 0.0 || *sa <= 0.0 || *rca <= 0.0 {
                continue;
            }
            println!(
                "{:<12} {:<8} {:>8.2}x {:>6} {:>9.2}x {:>9.2}x   ({} vs {}: throughput ratio, CPU per message ratio)",
                mode.name(),
                "ratio",
                rb / ra,
                "",
                sb / sa,
                rcb / rca,
                builds[1].label,
                builds[0].label
            );
        }
    }
    Ok(())
}

fn per_msg_opt(t: &Trial, n: Option<u64>) -> String {
    n.map(|n| format!("{:.3}", t.per_msg(n as f64)))
        .unwrap_or_else(|| "-".into())
}

fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One trial (see the module contract); `traced` runs both nodes under strace.
fn trial(
    args: &E2eArgs,
    build: &Build,
    mode: Mode,
    ticks: f64,
    traced: bool,
) -> anyhow::Result<Trial> {
    let dir = unique_dir(mode.name(), &build.label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let startup = Instant::now() + Duration::from_secs(STARTUP_TIMEOUT_SECS);
    let mut receiver = Node::spawn(
        "R",
        &build.bin,
        &dir.join("r"),
        &[&["--listen", "127.0.0.1:0", "--json"], mode.node_args()].concat(),
        traced,
    )?;
    let enode_r = receiver.first_stdout_line(startup)?;
    let key_r = enode_key(&enode_r)?;
    let mut sender = Node::spawn(
        "S",
        &build.bin,
        &dir.join("s"),
        &[
            &["--listen", "127.0.0.1:0", "--json", "--peer", &enode_r],
            mode.node_args(),
        ]
        .concat(),
        traced,
    )?;
    let enode_s = sender.first_stdout_line(startup)?;
    let key_s = enode_key(&enode_s)?;
    receiver.wait_stderr(startup, |l| {
        l.starts_with("hush: peer connected") && l.contains(&key_s)
    })?;
    sender.wait_stderr(startup, |l| {
        l.starts_with("hush: peer connected") && l.contains(&key_r)
    })?;
    let r_key = format!("0x04{key_r}");

    // Warm-up: first contact (and X3DH for /dm) is not what we measure.
    let counter = Arc::new(Counter::default());
    let reader = receiver.count_messages(counter.clone());
    sender.write(&mode.line(&r_key, &format!("{TEXT_PREFIX}warmup")))?;
    while counter.warmed.load(Ordering::SeqCst) == 0 {
        if Instant::now() > startup {
            bail!("the warm-up message never arrived\n{}", receiver.tail());
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let n = args.messages;
    let (s0, r0) = (sender.cpu_ticks()?, receiver.cpu_ticks()?);
    let wall0 = unix_secs();
    let t0 = Instant::now();
    // The feeder writes in its own thread: a stdin that pushes back must not stop us counting.
    let mut stdin = sender.stdin.take().context("sender stdin")?;
    let window = args.window;
    let feeder_counter = counter.clone();
    let lines: Vec<String> = (0..n)
        .map(|i| mode.line(&r_key, &format!("{TEXT_PREFIX}{i}")))
        .collect();
    let feeder = std::thread::spawn(move || -> std::io::Result<ChildStdin> {
        if window == 0 {
            stdin.write_all(lines.concat().as_bytes())?;
        } else {
            for (i, line) in lines.iter().enumerate() {
                while i >= window + feeder_counter.delivered.load(Ordering::SeqCst) as usize {
                    if feeder_counter.stop.load(Ordering::SeqCst) {
                        return Ok(stdin);
                    }
                    std::thread::sleep(Duration::from_millis(WINDOW_POLL_MS));
                }
                stdin.write_all(line.as_bytes())?;
            }
        }
        stdin.flush()?;
        Ok(stdin)
    });
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    let stall = Duration::from_secs(args.stall_secs);
    loop {
        let count = counter.delivered.load(Ordering::SeqCst) as usize;
        if count >= n {
            break;
        }
        if count != last_count {
            last_count = count;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > stall {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (s1, r1) = (sender.cpu_ticks()?, receiver.cpu_ticks()?);
    counter.stop.store(true, Ordering::SeqCst);
    let delivered = counter.delivered.load(Ordering::SeqCst) as usize;
    let last = *counter
        .last
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let elapsed = last.unwrap_or_else(Instant::now).duration_since(t0);
    let wall1 = wall0 + elapsed.as_secs_f64();
    let mut t = Trial {
        delivered,
        elapsed_secs: elapsed.as_secs_f64(),
        sender_cpu_secs: (s1 - s0) as f64 / ticks,
        receiver_cpu_secs: (r1 - r0) as f64 / ticks,
        ..Trial::default()
    };
    if delivered < n {
        // Stalled: whatever is still blocked on the pipe is moot.
        let _ = sender.child.kill();
    }
    if let Ok(Ok(stdin)) = feeder.join() {
        sender.stdin = Some(stdin);
    }
    if delivered == n {
        t.stats = [sender.stats(None), receiver.stats(Some(&counter))];
        t.sender_commits = t.stats[0]
            .as_deref()
            .and_then(|l| stat_value(l, "store_commits"));
        t.receiver_commits = t.stats[1]
            .as_deref()
            .and_then(|l| stat_value(l, "store_commits"));
    }
    for node in [&mut sender, &mut receiver] {
        node.quit();
    }
    drop(reader);
    if traced {
        t.sender_fsyncs = Some(count_fsyncs(&sender.trace, wall0, wall1)?);
        t.receiver_fsyncs = Some(count_fsyncs(&receiver.trace, wall0, wall1)?);
    }
    if args.keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(t)
}

/// Messages seen at the receiver.
#[derive(Default)]
struct Counter {
    delivered: AtomicU64,
    warmed: AtomicU64,
    last: Mutex<Option<Instant>>,
    /// The trial is over: the feeder stops waiting for room in the window.
    stop: std::sync::atomic::AtomicBool,
    /// The receiver's `/stats` answer.
    stats_line: Mutex<Option<String>>,
}

/// A node process with its output read by threads.
struct Node {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Receiver<String>>,
    stderr: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// Runs under strace, which writes `trace`.
    traced: bool,
    trace: PathBuf,
}

impl Node {
    fn spawn(
        name: &str,
        bin: &Path,
        data_dir: &Path,
        args: &[&str],
        traced: bool,
    ) -> anyhow::Result<Node> {
        let trace = data_dir.with_extension("strace");
        let mut cmd = if traced {
            let mut c = Command::new("strace");
            c.args([
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-ttt",
                "-e",
                "trace=fsync,fdatasync",
                "-o",
            ])
            .arg(&trace)
            .arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let mut child = cmd
            .arg("node")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = lines_of(child.stdout.take().context("stdout")?, None);
        let stderr = lines_of(child.stderr.take().context("stderr")?, Some(log.clone()));
        Ok(Node {
            name: name.into(),
            stdin: child.stdin.take(),
            child,
            stdout: Some(stdout),
            stderr,
            log,
            traced,
            trace,
        })
    }

    fn tail(&self) -> String {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        let from = log.len().saturating_sub(20);
        format!(
            "{} stderr (last lines):\n{}",
            self.name,
            log[from..].join("\n")
        )
    }

    fn first_stdout_line(&self, deadline: Instant) -> anyhow::Result<String> {
        let rx = self.stdout.as_ref().context("stdout taken")?;
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| anyhow::anyhow!("{}: no enode line\n{}", self.name, self.tail()))
    }

    fn wait_stderr(&self, deadline: Instant, pred: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if pred(&l) => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    bail!(
                        "{}: timed out waiting for its peer\n{}",
                        self.name,
                        self.tail()
                    )
                }
            }
        }
    }

    fn write(&mut self, s: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin taken")?;
        stdin.write_all(s.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Counts distinct `bench-<i>` texts the node prints (JSON lines) from now on.
    fn count_messages(&mut self, counter: Arc<Counter>) -> Option<std::thread::JoinHandle<()>> {
        let rx = self.stdout.take()?;
        Some(std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let needle = format!("\"text\":\"{TEXT_PREFIX}");
            for line in rx.iter() {
                let Some(at) = line.find(&needle) else {
                    if is_stats_line(&line) {
                        if let Ok(mut s) = counter.stats_line.lock() {
                            *s = Some(line);
                        }
                    }
                    continue;
                };
                let rest = &line[at + needle.len()..];
                let Some(end) = rest.find('"') else { continue };
                let tag = &rest[..end];
                if tag == "warmup" {
                    counter.warmed.store(1, Ordering::SeqCst);
                } else if seen.insert(tag.to_string()) {
                    if let Ok(mut last) = counter.last.lock() {
                        *last = Some(Instant::now());
                    }
                    counter.delivered.fetch_add(1, Ordering::SeqCst);
                }
            }
        }))
    }

    /// utime + stime of the process so far, in clock ticks (`/proc/PID/stat` fields 14, 15).
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let pid = self.node_pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let after = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..))
            .context("/proc stat format")?;
        let f: Vec<&str> = after.split_whitespace().collect();
        let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
        let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
        Ok(utime + stime)
    }

    /// The node's pid (under strace: strace's only child).
    fn node_pid(&self) -> anyhow::Result<u32> {
        let pid = self.child.id();
        if !self.traced {
            return Ok(pid);
        }
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
            .context("strace's child pid")
    }

    /// The node's `/stats` answer, read from our stdout channel or, once the counter has taken
    /// that, from the counter.
    fn stats(&mut self, counter: Option<&Counter>) -> Option<String> {
        self.write("/stats\n").ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let line = match counter {
            Some(c) => loop {
                if let Some(l) = c.stats_line.lock().ok()?.take() {
                    break l;
                }
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            },
            None => {
                let rx = self.stdout.as_ref()?;
                loop {
                    let l = rx
                        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                        .ok()?;
                    if is_stats_line(&l) {
                        break l;
                    }
                }
            }
        };
        Some(line)
    }

    /// `/quit`, then a short wait, then SIGKILL.
    fn quit(&mut self) {
        let _ = self.write("/quit\n");
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/stats` answer, plain (`stats k=v ...`) or JSON (`{"reply":"stats",...}`).
fn is_stats_line(line: &str) -> bool {
    line.starts_with("stats ") || line.contains("\"reply\":\"stats\"")
}

/// A counter in a `/stats` answer: `name=value` (plain) or `"name":value` (JSON), the name
/// alone or after a layer prefix (`"driver.name":value`).
fn stat_value(line: &str, name: &str) -> Option<u64> {
    for pat in [format!("{name}="), format!("{name}\":")] {
        for (at, _) in line.match_indices(&pat) {
            let before = line[..at].chars().next_back();
            if !matches!(before, None | Some(' ' | '"' | '.')) {
                continue;
            }
            let digits: String = line[at + pat.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            return digits.parse().ok();
        }
    }
    None
}

fn lines_of(
    stream: impl std::io::Read + Send + 'static,
    log: Option<Arc<Mutex<Vec<String>>>>,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(log) = &log {
                if let Ok(mut l) = log.lock() {
                    l.push(line.clone());
                }
            }
            // Keep draining even if nobody listens, so the node never blocks on its output.
            let _ = tx.send(line);
        }
    });
    rx
}

/// fsync/fdatasync calls in an `strace -f -ttt` log between two Unix times.
fn count_fsyncs(trace: &Path, from_secs: f64, to_secs: f64) -> anyhow::Result<u64> {
    let text =
        std::fs::read_to_string(trace).with_context(|| format!("reading {}", trace.display()))?;
    let mut n = 0;
    for line in text.lines() {
        // "PID SECS.USECS fsync(5) = 0" (or "<unfinished ...>" / "resumed>" halves).
        let mut f = line.split_whitespace();
        let (_pid, Some(ts)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let call = f.next().unwrap_or_default();
        let is_sync = call.starts_with("fsync(") || call.starts_with("fdatasync(");
        if is_sync && ts >= from_secs && ts <= to_secs {
            n += 1;
        }
    }
    Ok(n)
}

fn enode_key(enode: &str) -> anyhow::Result<String> {
    enode
        .strip_prefix("enode://")
        .and_then(|r| r.split('@').next())
        .filter(|k| k.len() == 128)
        .map(str::to_string)
        .with_context(|| format!("not an enode line: {enode:?}"))
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn unique_dir(mode: &str, label: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!(
        "hush-bench-{}-{mode}-{label}-{n}",
        std::process::id()
    ))
}

/// `sysconf(_SC_CLK_TCK)` through `getconf` (no libc here); Linux reports 100.
fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests;
