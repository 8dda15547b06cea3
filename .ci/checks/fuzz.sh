#!/usr/bin/env bash
# Every fuzz target for a short while (FLIN_FUZZ_SECONDS, default 60 each); fails on any crash.
# For real fuzzing run `fuzz/run.sh 3600` by hand (see README).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash fuzz/run.sh "${FLIN_FUZZ_SECONDS:-60}"
