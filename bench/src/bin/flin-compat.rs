//! Sends every command of the case files to flin and to redis-server and compares the replies
//! byte for byte. Prints each difference (file:line, the command, both replies escaped) and a
//! summary; exits 1 if any reply differs, 2 if it could not run.
//!
//! `flin-compat --flin 127.0.0.1:6379 --redis 127.0.0.1:6380 bench/compat/*.txt`
//!
//! The case file format is described in `bench/compat/README.md`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flin_bench::compat::{parse_cases, Conn, Outcome, Pair, SHOWN_MAX_BYTES};
use flin_bench::resp::encode_command;

#[derive(Parser)]
#[command(
    about = "Compare flin's replies with redis-server's, byte for byte, over case files",
    after_help = "Case file format: bench/compat/README.md. Both servers get FLUSHALL before each file."
)]
struct Args {
    /// flin-server address.
    #[arg(long, value_name = "HOST:PORT")]
    flin: String,
    /// redis-server (7.x) address.
    #[arg(long, value_name = "HOST:PORT")]
    redis: String,
    /// The password both servers require (their --requirepass): used only to FLUSHALL before
    /// each file, on a connection of its own; the cases start unauthenticated.
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Longest wait for one reply, in milliseconds; a reply missing for longer is reported.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    timeout_ms: u64,
    /// Case files.
    #[arg(required = true, value_name = "CASE_FILE")]
    files: Vec<PathBuf>,
}

fn resolve(what: &str, addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("--{what} {addr}: {e}; give HOST:PORT"))?
        .next()
        .ok_or_else(|| format!("--{what} {addr} resolves to no address; give HOST:PORT"))
}

fn connect(what: &str, addr: SocketAddr, timeout: Duration) -> Result<Conn, String> {
    Conn::connect(addr, timeout).map_err(|e| {
        format!("cannot connect to {what} at {addr}: {e}; is the server running on that port?")
    })
}

/// FLUSHALL on a connection of its own (after AUTH when there is a password); anything but
/// `+OK` stops the run.
fn flushall(
    what: &str,
    addr: SocketAddr,
    timeout: Duration,
    password: Option<&str>,
) -> Result<(), String> {
    let mut conn = connect(what, addr, timeout)?;
    let mut request = Vec::new();
    if let Some(p) = password {
        request.extend(encode_command(&[b"AUTH", p.as_bytes()]));
    }
    request.extend(encode_command(&[b"FLUSHALL"]));
    let mut answer = conn.request(&request);
    if password.is_some() {
        if !matches!(&answer, Outcome::Reply(r) if r == b"+OK\r\n") {
            return Err(format!(
                "AUTH on {what} answered {}; is --password the server's password?",
                answer.describe(SHOWN_MAX_BYTES)
            ));
        }
        answer = conn.request(&[]);
    }
    match answer {
        Outcome::Reply(r) if r == b"+OK\r\n" => Ok(()),
        other => Err(format!(
            "FLUSHALL on {what} answered {}; the file cannot start from an empty keyspace{}",
            other.describe(SHOWN_MAX_BYTES),
            if password.is_none() {
                " (does it need --password?)"
            } else {
                ""
            }
        )),
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let flin_addr = resolve("flin", &args.flin)?;
    let redis_addr = resolve("redis", &args.redis)?;
    let mut pair = Pair::new(
        connect("redis-server", redis_addr, timeout)?,
        connect("flin-server", flin_addr, timeout)?,
    );
    let (mut compared, mut differing) = (0usize, 0usize);
    for path in &args.files {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read case file {name}: {e}"))?;
        let steps = parse_cases(&text).map_err(|e| format!("{name}: {e}"))?;
        pair.reconnect()
            .map_err(|e| format!("{name}: reconnecting before the file: {e}"))?;
        let password = args.password.as_deref();
        flushall("redis-server", redis_addr, timeout, password)?;
        flushall("flin-server", flin_addr, timeout, password)?;
        let (n, diffs) = pair
            .run(&steps)
            .map_err(|e| format!("{name}: a server stopped accepting connections: {e}"))?;
        for d in &diffs {
            println!("{name}:{}: {}", d.line, d.text);
            println!("  redis: {}", d.redis);
            println!("  flin:  {}", d.flin);
        }
        println!("{name}: {n} compared, {} differ", diffs.len());
        compared += n;
        differing += diffs.len();
    }
    println!(
        "flin-compat: {compared} commands compared over {} files, {differing} differ",
        args.files.len()
    );
    Ok(differing == 0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("flin-compat: {e}");
            ExitCode::from(2)
        }
    }
}
