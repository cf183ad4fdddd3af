#!/usr/bin/env bash
# Before/after figures from one run: builds a loom-benches binary from an
# older revision (in a git worktree) and from this tree, then runs the two
# alternately, ROUNDS times each, so both see the same machine state.
# Every output line is prefixed with `base` or `new` and the round.
#
#   tools/ab-bench.sh BASE_REV ROUNDS BIN [BENCH ARGS...]
#   tools/ab-bench.sh 0a978e3 3 micro yield
#   tools/ab-bench.sh 0a978e3 3 echo --impl loom-io_uring,loom-epoll --msg 64
#
# The worktree goes to $AB_BASE_DIR (default /tmp/loom-ab-BASE_REV) and is
# kept for the next call.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
base=$1 rounds=$2 bin=$3
shift 3
root=$(git rev-parse --show-toplevel)
worktree=${AB_BASE_DIR:-/tmp/loom-ab-$base}
if [ ! -d "$worktree" ]; then
    git -C "$root" worktree add --force --detach "$worktree" "$base" >/dev/null
fi
build() { (cd "$1" && CARGO_TARGET_DIR="$1/target" cargo build --quiet --release -p loom-benches --bin "$bin"); }
build "$worktree"
build "$root"
for round in $(seq "$rounds"); do
    for side in base new; do
        dir=$root
        [ "$side" = base ] && dir=$worktree
        echo "# $side round $round" >&2
        "$dir/target/release/$bin" "$@" | sed "s/^/$side round=$round /"
    done
done
