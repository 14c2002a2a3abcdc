#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/run.sh) for QBCDC_FUZZ_SECONDS each (default 10):
# 10 targets, about two and a half minutes with the build. .ci/run runs it in the release pass only,
# first, beside the other tests: niced, so that their timings are not the fuzzers' to take (a fuzzer
# runs for its seconds either way); the fuzzers are built with ASan + UBSan already.
exec nice -n 10 bash "$(dirname "$0")/../../fuzz/run.sh" "${QBCDC_FUZZ_SECONDS:-10}"
