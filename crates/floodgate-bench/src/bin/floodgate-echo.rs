//! `floodgate-echo`: the floor under every open-loop p99 `scripts/bench`
//! measures. A paced TCP echo over loopback with plain threads and blocking
//! sockets (TCP_NODELAY): no async runtime, no HTTP/2, no gRPC, nothing but
//! the kernel and the machine. A sender thread writes a 16-byte message at
//! each due time (start + i / rate), an echo thread sends it back, a reader
//! thread times each answer from its due time (so a stalled sender counts,
//! as in `floodgate-bench`'s open loop; the sender's timer slack is 1 µs, so
//! its sleeps end on time). With `--relay` each message takes
//! two hops, client → relay → echo and back, the path of a sidecar that asks
//! Redis once per check.
//!
//! What it shows: when this echo's p99 at some rate is over a target, no
//! server of any kind could meet that target at that rate, on this machine,
//! then. Loopback only, bounded by `--for`; it stops by itself.

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use hdrhistogram::Histogram;

/// Bytes per message: the index (8) and padding.
const MESSAGE: usize = 16;

/// How long the reader waits for any answer, and the sender for room to
/// write, before each gives up.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Flags.
#[derive(Debug, Parser)]
#[command(name = "floodgate-echo", version, about)]
struct Args {
    /// Messages per second (1 to 10000000, as floodgate-bench's --rate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    rate: u32,
    /// Seconds to send for (more than 0, at most 600).
    #[arg(long = "for", value_parser = parse_seconds)]
    seconds: f64,
    /// Two hops (client → relay → echo and back) instead of one.
    #[arg(long)]
    relay: bool,
    /// Print one JSON object (`latency_us` as `floodgate-bench --json`).
    #[arg(long)]
    json: bool,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 600.0 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds in (0, 600]")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(latency) => {
            print(&args, &latency);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("floodgate-echo: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `rate × seconds` messages and returns their latencies (µs).
fn run(args: &Args) -> anyhow::Result<Histogram<u64>> {
    let count = (f64::from(args.rate) * args.seconds).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let echo = serve_echo()?;
    let target = if args.relay { serve_relay(echo)? } else { echo };
    let stream = connect(target)?;
    stream
        .set_write_timeout(Some(STALL_LIMIT))
        .context("write timeout")?;
    let mut reader = stream.try_clone().context("socket clone")?;
    reader
        .set_read_timeout(Some(STALL_LIMIT))
        .context("read timeout")?;
    let start = Instant::now() + Duration::from_millis(1);
    // When message i is due: the sender sends it then, the reader times it from then.
    let due = move |i: u64| start + interval.mul_f64(i as f64);
    let timer = thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut message = [0u8; MESSAGE];
        for _ in 0..count {
            if let Err(error) = reader.read_exact(&mut message) {
                // The sender's next write fails at once instead of filling
                // the socket's buffers.
                let _ = reader.shutdown(std::net::Shutdown::Both);
                return Err(match error.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                        anyhow::anyhow!("no answer within {} s", STALL_LIMIT.as_secs())
                    }
                    _ => anyhow::Error::new(error).context("reading the answers"),
                });
            }
            let now = Instant::now();
            let i = u64::from_le_bytes(message[..8].try_into().expect("8 bytes"));
            latency.saturating_record(now.saturating_duration_since(due(i)).as_micros() as u64);
        }
        Ok(latency)
    });
    // Sleeps end within 1 µs of their time, not the default 50 µs.
    #[cfg(target_os = "linux")]
    rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1000))
        .context("timer slack")?;
    let mut writer = stream;
    let mut message = [0u8; MESSAGE];
    for i in 0..count {
        let (due, now) = (due(i), Instant::now());
        if due > now {
            thread::sleep(due - now);
        }
        message[..8].copy_from_slice(&i.to_le_bytes());
        if let Err(error) = writer.write_all(&message) {
            // The reader's error (it shut the socket) says why, if it had one.
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return match timer.join() {
                Ok(Err(reader_error)) => Err(reader_error),
                _ => Err(anyhow::Error::new(error).context("sending")),
            };
        }
    }
    match timer.join() {
        Ok(latency) => latency,
        Err(_) => bail!("the reader thread panicked"),
    }
}

/// A loopback listener whose first connection gets `handle`, on a thread.
fn serve(handle: impl FnOnce(TcpStream) + Send + 'static) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_nodelay(true);
            handle(stream);
        }
    });
    Ok(addr)
}

/// An echo server for one connection: what it reads, it writes back.
fn serve_echo() -> anyhow::Result<SocketAddr> {
    serve(|stream| {
        let _ = copy(&stream, &stream);
    })
}

/// A relay for one connection: its bytes to `upstream` and back.
fn serve_relay(upstream: SocketAddr) -> anyhow::Result<SocketAddr> {
    let up = connect(upstream)?;
    serve(move |down| {
        let (up_reader, down_writer) = match (up.try_clone(), down.try_clone()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return,
        };
        thread::spawn(move || copy(&up_reader, &down_writer));
        let _ = copy(&down, &up);
    })
}

/// Copies `from` to `to` until `from` closes, one write per read.
fn copy(mut from: &TcpStream, mut to: &TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 4096];
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..n])?;
    }
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(stream)
}

fn print(args: &Args, latency: &Histogram<u64>) {
    let hops = if args.relay { 2 } else { 1 };
    let at = |q: f64| latency.value_at_quantile(q);
    if args.json {
        let report = serde_json::json!({
            "rate": args.rate,
            "seconds": args.seconds,
            "hops": hops,
            "messages": latency.len(),
            "latency_us": {
                "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p99_9": at(0.999),
                "max": latency.max(), "mean": latency.mean(),
            },
        });
        println!("{report}");
    } else {
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "floodgate-echo: {} messages at {}/s, {hops} hop(s): p50 {:.3} ms, p90 {:.3}, \
             p99 {:.3}, p99.9 {:.3}, max {:.3}",
            latency.len(),
            args.rate,
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(0.99)),
            ms(at(0.999)),
            ms(latency.max()),
        );
    }
}
