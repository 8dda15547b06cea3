//! INFO's per-command sections, summed over the workers since the last CONFIG RESETSTAT:
//! `commandstats` (calls, time, rejected and failed calls), `errorstats` (error replies by
//! code) and `latencystats` (p50, p99 and p99.9 of each command's latency), in Redis 7.0's
//! format.

use std::fmt::Write as _;

use super::{spec, Ctx};
use crate::clock::ticks_to_us;
use crate::cmdstats::{self, Baseline};

/// The percentiles latencystats reports (Redis's `latency-tracking-info-percentiles`).
const PERCENTILES: &[(&str, f64)] = &[("50", 50.0), ("99", 99.0), ("99.9", 99.9)];

/// Runs `f` with the baseline of the last CONFIG RESETSTAT.
fn with_baseline<R>(ctx: &Ctx<'_>, f: impl FnOnce(&Baseline) -> R) -> R {
    match ctx.server.command_stats_baseline.lock() {
        Ok(b) => f(&b),
        Err(_) => f(&Baseline::default()),
    }
}

pub(super) fn commandstats(ctx: &Ctx<'_>, s: &mut String) {
    s.push_str("# Commandstats\r\n");
    let workers = &ctx.server.command_stats;
    with_baseline(ctx, |b| {
        for slot in 0..spec::stat_slots() {
            let t = b.totals(workers, slot);
            if t.calls == 0 && t.rejected == 0 && t.failed == 0 {
                continue;
            }
            let usec = ticks_to_us(t.ticks);
            let per_call = if t.calls == 0 {
                0.0
            } else {
                usec / t.calls as f64
            };
            let _ = write!(
                s,
                "cmdstat_{}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                spec::stat_name(slot), t.calls, usec as u64, t.rejected, t.failed
            );
        }
    });
}

pub(super) fn errorstats(ctx: &Ctx<'_>, s: &mut String) {
    s.push_str("# Errorstats\r\n");
    let (by_code, _) = cmdstats::errors(&ctx.server.command_stats);
    for (code, n) in by_code {
        let _ = write!(
            s,
            "errorstat_{}:count={n}\r\n",
            String::from_utf8_lossy(&code)
        );
    }
}

pub(super) fn latencystats(ctx: &Ctx<'_>, s: &mut String) {
    s.push_str("# Latencystats\r\n");
    let workers = &ctx.server.command_stats;
    with_baseline(ctx, |b| {
        for slot in 0..spec::stat_slots() {
            let Some(h) = b.histogram(workers, slot) else {
                continue;
            };
            let _ = write!(s, "latency_percentiles_usec_{}:", spec::stat_name(slot));
            for (k, (label, p)) in PERCENTILES.iter().enumerate() {
                let us = ticks_to_us(cmdstats::value_at_percentile(&h, *p));
                let sep = if k == 0 { "" } else { "," };
                let _ = write!(s, "{sep}p{label}={us:.3}");
            }
            s.push_str("\r\n");
        }
    });
}

/// Error replies since the last CONFIG RESETSTAT (INFO stats' `total_error_replies`).
pub(super) fn total_error_replies(ctx: &Ctx<'_>) -> u64 {
    cmdstats::errors(&ctx.server.command_stats).1
}
