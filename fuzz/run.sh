#!/usr/bin/env bash
# Runs every fuzz target for a while: `fuzz/run.sh [seconds-per-target]` (default 60).
#
# Installs cargo-fuzz (and a nightly toolchain) when missing, seeds each target's corpus from
# fuzz/seeds/<target>/, and exits non-zero when any target finds a crash; the input that
# crashed is left in fuzz/artifacts/<target>/ and the command to replay it is printed.
# CI runs this with about a minute per target; run it with hours per target to fuzz for real.
#
# Builds carry debug assertions (integer overflow panics). The sanitizer is off by default:
# the engine targets open a store several times per input, each open starts threads, and
# AddressSanitizer makes that 3-4x slower, while every allocation is already capped by the
# targets' own allocator (fuzz/src/alloc.rs). FUZZ_SANITIZER=address turns it on.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build --debug-assertions --sanitizer "$sanitizer"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    for seed in "seeds/$target"/*; do
        [ -e "$seed" ] || continue
        [ -e "corpus/$target/$(basename "$seed")" ] || cp "$seed" "corpus/$target/"
    done
    # Only the parser reads text: the engine targets' input is structure (see fuzz/src/files.rs).
    dict=()
    [ "$target" = resp_parse ] && dict=(-dict=resp.dict)
    echo "== fuzz $target for ${seconds}s"
    log="$logs/$target.log"
    if ! cargo +nightly fuzz run --debug-assertions --sanitizer "$sanitizer" "$target" \
        "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        ${dict[@]+"${dict[@]}"} 2>&1 | tee "$log"; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    # The fuzzers' progress lines push a failure's report far up the log; repeat what is
    # needed to reproduce it here, at the end, including the input itself (base64), since
    # a CI machine's fuzz/artifacts/ is gone once the run ends.
    for target in "${failed[@]}"; do
        echo "== $target failed; its report:"
        grep -E -A 12 "panicked at|ERROR: libFuzzer|SUMMARY:" "$logs/$target.log" | head -60 || true
        for input in artifacts/"$target"/*; do
            [ -e "$input" ] || continue
            echo "== input $input (base64; replay: base64 -d > x && cargo +nightly fuzz run $target x):"
            base64 -w 100 "$input" | head -200
        done
    done
    echo "== crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "== no crashes"
