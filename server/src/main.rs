//! The `flin-server` binary: flags, logging, signals; the server itself is the library.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use flin_server::{Config, Server, ShutdownTrigger};

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(&config.log_level);
    // Block SIGINT and SIGTERM before any thread starts, so every thread inherits the mask and
    // only the signal thread below receives them.
    let signals = block_shutdown_signals();
    // The signal thread starts before the store opens, which takes a while on a large store
    // whose files are not in memory: a SIGTERM or SIGINT meanwhile stops the process at once
    // (opening writes nothing that a stop could leave half done) instead of being ignored
    // until the store is open, which made service managers resort to SIGKILL.
    let trigger: Arc<Mutex<Option<ShutdownTrigger>>> = Arc::new(Mutex::new(None));
    let for_signals = trigger.clone();
    std::thread::Builder::new()
        .name("flin-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // Every signal, not only the first: a shutdown waiting for lagging replicas
            // (`shutdown-timeout`) stops at once on the second, as Redis's does.
            // SAFETY: `signals` is an initialised set and `sig` outlives the call.
            while unsafe { libc::sigwait(&signals, &mut sig) } == 0 {
                tracing::info!(signal = sig, "signal received");
                match for_signals.lock().map(|t| t.clone()) {
                    Ok(Some(t)) => t.trigger(),
                    _ => {
                        tracing::info!(
                            "stopping before the data directory was open; nothing was changed"
                        );
                        std::process::exit(0);
                    }
                }
            }
        })
        .expect("spawn the signal thread");
    let handle = match Server::start(config) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("flin-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(mut t) = trigger.lock() {
        *t = Some(handle.shutdown_trigger());
    }
    match handle.wait() {
        Ok(()) => {
            tracing::info!("stopped; every write is synced");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "final sync failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before it is read; pthread_sigmask changes only
    // this thread's mask (inherited by the threads it spawns later).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
