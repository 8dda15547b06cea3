//! The wall clock, read where the commands, the cron and the saves need it: Unix time in
//! milliseconds. At the bottom of the crate so that every layer can read the time without
//! importing the layer above it.

/// Unix time now in milliseconds (0 for a clock set before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A cheap monotonic counter for timing commands (every command is timed for INFO
/// commandstats, SLOWLOG and LATENCY): the CPU's time-stamp counter on x86-64, where reading
/// it costs a few nanoseconds against about twenty for `Instant::now`; nanoseconds since the
/// first call elsewhere. [`ticks_per_us`] converts.
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86-64 CPU and touches no memory.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// How long the calibration of [`ticks`] against the monotonic clock takes, once.
const CALIBRATION: std::time::Duration = std::time::Duration::from_millis(5);

/// [`ticks`] per microsecond, measured once against `Instant` over [`CALIBRATION`] (the first
/// call waits that long; the server calls it at start).
pub fn ticks_per_us() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, c0) = (std::time::Instant::now(), ticks());
        while t0.elapsed() < CALIBRATION {
            std::hint::spin_loop();
        }
        let (elapsed, c1) = (t0.elapsed(), ticks());
        let rate = (c1.wrapping_sub(c0)) as f64 / (elapsed.as_nanos() as f64 / 1000.0);
        if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1000.0
        }
    })
}

/// A span of [`ticks`] in microseconds.
pub fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_us()
}

/// Microseconds as [`ticks`] (for comparing a duration against a threshold on the hot path).
pub fn us_to_ticks(us: u64) -> u64 {
    (us as f64 * ticks_per_us()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_advance_at_the_calibrated_rate() {
        let rate = ticks_per_us();
        assert!(rate > 0.0);
        let (t0, c0) = (std::time::Instant::now(), ticks());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let us = ticks_to_us(ticks() - c0);
        let real = t0.elapsed().as_secs_f64() * 1e6;
        assert!(
            (us - real).abs() < real * 0.2 + 1000.0,
            "{us} us by ticks, {real} by Instant"
        );
        assert_eq!(us_to_ticks(0), 0);
    }
}
