#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/run.sh) for QBCDC_FUZZ_SECONDS each (default 10):
# 9 targets, about two and three-quarter minutes with the build. .ci/run runs it in the release pass only;
# the fuzzers are built with ASan + UBSan already.
exec bash "$(dirname "$0")/../../fuzz/run.sh" "${QBCDC_FUZZ_SECONDS:-10}"
