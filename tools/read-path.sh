#!/usr/bin/env bash
# Which loom-runtime source files run on every `TcpStream::read`, counted
# rather than read off the code: a program reads N one-byte messages that
# are already waiting in the socket, built with coverage instrumentation
# (debug, so nothing is inlined away); a function is on the read path if
# its entry count grows by at least one per read between N = 2000 and
# N = 4000. On io_uring each read takes the whole path (submit, suspend,
# the loop's wait and reap, resume); on epoll/kqueue a read of waiting data
# completes without parking.
#
# usage: tools/read-path.sh [CHECKOUT] [BACKEND]    (defaults: this tree, io_uring)
# e.g.:  git worktree add /tmp/before bc8e63a && tools/read-path.sh /tmp/before epoll
# needs: rustup component add llvm-tools-preview; python3
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
checkout=$(cd "${1:-$here}" && pwd)
backend=${2:-io_uring}
toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' "$here/rust-toolchain.toml")
bin_dir="$(rustc +"$toolchain" --print sysroot)/lib/rustlib/$(rustc +"$toolchain" -vV | sed -n 's/^host: //p')/bin"
[ -x "$bin_dir/llvm-profdata" ] || rustup component add --toolchain "$toolchain" llvm-tools-preview

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "read-path"
version = "0.1.0"
edition = "2024"
[dependencies]
loom = { path = "$checkout/loom" }
[workspace]
TOML
cat > "$work/src/main.rs" <<'RUST'
use std::io::{Read, Write};

fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    loom::Runtime::builder().build().unwrap().run(move || {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = loom::spawn(move || {
            let mut stream = loom::net::TcpStream::connect(addr).unwrap();
            stream.write_all(&vec![7u8; n]).unwrap();
            stream
        });
        let (mut stream, _) = listener.accept().unwrap();
        let _peer = writer.join().unwrap();
        let mut byte = [0u8; 1];
        for _ in 0..n {
            assert_eq!(stream.read(&mut byte).unwrap(), 1);
        }
    });
}
RUST
# Proc macros are instrumented too: their profiles go to the scratch dir.
(cd "$work" && RUSTFLAGS="-C instrument-coverage" LLVM_PROFILE_FILE="$work/build-%p.profraw" \
    cargo +"$toolchain" build -q)
for n in 2000 4000; do
    LLVM_PROFILE_FILE="$work/$n.profraw" LOOM_BACKEND=$backend "$work/target/debug/read-path" $n
    "$bin_dir/llvm-profdata" merge -o "$work/$n.profdata" "$work/$n.profraw"
    "$bin_dir/llvm-cov" export -format=text -instr-profile="$work/$n.profdata" \
        "$work/target/debug/read-path" > "$work/$n.json"
done
python3 - "$work" <<'PY'
import collections, json, re, sys

def entries(path):
    counts = collections.Counter()
    for function in json.load(open(path))["data"][0]["functions"]:
        match = re.search(r"loom-runtime/src/(.*)", function["filenames"][0])
        if match:
            counts[(match.group(1), function["name"])] += function["count"]
    return counts

before, after = (entries(f"{sys.argv[1]}/{n}.json") for n in (2000, 4000))
files = collections.Counter()
for (file, name), count in after.items():
    if (count - before.get((file, name), 0)) / 2000 >= 1:
        files[file] += 1
for file in sorted(files):
    print(f"{file:32} {files[file]:3} functions")
print(f"{len(files)} files")
PY
