//! The `flin-bench` binary: parse the command line, run or chart, set the exit status.
//! All logic lives in the library (`lib.rs` lists where).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use flin_bench::options::{ChartArgs, Command, Config, Mode};
use flin_bench::{chart, BenchError, Cli, Progress, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run(&args),
        Some(Command::Chart(args)) => draw_chart(&args),
        None => run(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flin-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RunArgs) -> Result<ExitCode, BenchError> {
    let config = args.to_config().map_err(BenchError::Option)?;
    if config.mode == Mode::Pubsub {
        return fanout(args, &config);
    }
    let progress = if args.quiet {
        Progress::Off
    } else {
        Progress::Auto
    };
    let report = flin_bench::run(&config, progress)?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    let mut stdout = std::io::stdout().lock();
    let printed = if args.csv {
        report.print_csv(&mut stdout)
    } else {
        report.print_text(&mut stdout)
    };
    let _ = printed.and_then(|()| stdout.flush());
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "flin-bench: FAILED: {} requests got a wrong reply or none; first: {}",
        report.errors,
        report.first_error.as_deref().unwrap_or("(not recorded)")
    );
    Ok(ExitCode::FAILURE)
}

fn fanout(args: &RunArgs, config: &Config) -> Result<ExitCode, BenchError> {
    let report = flin_bench::fanout::run(config)?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = report.print_text(&mut stdout).and_then(|()| stdout.flush());
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "flin-bench: FAILED: {} errors; first: {}",
        report.errors,
        report.first_error.as_deref().unwrap_or("(not recorded)")
    );
    Ok(ExitCode::FAILURE)
}

fn draw_chart(args: &ChartArgs) -> Result<ExitCode, BenchError> {
    let table = chart::read_table(&args.json)?;
    chart::draw(&table, &args.out)?;
    eprintln!("flin-bench: wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
