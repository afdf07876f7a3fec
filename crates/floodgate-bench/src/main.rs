//! The `floodgate-bench` binary: parses flags, builds the runtime, runs the
//! bench and prints the report (exit 1 when the run cannot start, 3 when
//! accuracy mode saw a key admitted past its quota), or serves the no-op
//! baseline (`floodgate-bench noop`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use floodgate_bench::{noop, run, Args, Command};

/// The allocator floodgate runs with, so the generator's own cost stays
/// small and equal for every target it loads, and the no-op baseline runs
/// on the same stack as floodgate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("floodgate-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match args.command {
        Some(Command::Noop(noop_args)) => match runtime.block_on(noop::serve(noop_args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("floodgate-bench noop: {error:#}");
                ExitCode::FAILURE
            }
        },
        None => load(args, &runtime),
    }
}

/// Runs the load the flags describe and prints its report.
fn load(args: Args, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let json = args.json;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("floodgate-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(run(&config)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("floodgate-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    match &report.accuracy {
        Some(accuracy) if !accuracy.within_quota() => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    }
}
