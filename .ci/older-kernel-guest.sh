#!/bin/sh
# Runs inside the older-kernel VM (busybox sh), started by older-kernel.sh:
#   older-kernel-guest.sh DEMO ABORT_CHILD TEST_LIST
# Runs the demo with its default arguments, then each test binary listed
# in TEST_LIST; exits non-zero if any of them failed.
set -u
demo=$1
export LOOM_DEMO_BIN=$demo LOOM_ABORT_CHILD_BIN=$2
list=$3
echo "guest: Linux $(uname -r), $(nproc) CPUs, vm.max_map_count $(cat /proc/sys/vm/max_map_count), RLIMIT_NOFILE $(ulimit -n)"
# Tests that need a server start it on 127.0.0.1.
ip link set lo up 2>/dev/null || true

runs=0
failed=""
run() {
    name=$1
    shift
    start=$(date +%s)
    runs=$((runs + 1))
    if "$@"; then
        echo "== $name: ok ($(($(date +%s) - start)) s)"
    else
        echo "== $name: FAILED ($(($(date +%s) - start)) s)"
        failed="$failed $name"
    fi
}

run "demo (default arguments)" "$demo"
run "demo --quick, LOOM_BACKEND=io_uring" env LOOM_BACKEND=io_uring "$demo" --quick
for test in $(cat "$list"); do
    case $(basename "$test") in
    # Under TCG a loop can be off its CPU for longer than a stall
    # threshold and a second holds few switches: the monitor's timing
    # tests belong to the host run; the counting tests run here.
    metrics-*) run "$(basename "$test")" "$test" --test-threads 2 \
        --skip a_blocking_fiber_is_named --skip a_busy_loop_that_yields_is_not_a_stall ;;
    *) run "$(basename "$test")" "$test" --test-threads 2 ;;
    esac
done
if [ -n "$failed" ]; then
    echo "older kernel $(uname -r): failed:$failed (of $runs runs)"
    exit 1
fi
echo "older kernel $(uname -r): all $runs runs passed"
