#!/usr/bin/env bash
# Model-checks (tokio-rs/loom) and Miri-checks the runtime's mailbox and the
# cross-loop wake-up handshake. See README.md. Run from anywhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
manifest=model/Cargo.toml

echo "== model checker (loom): cargo test --release --manifest-path $manifest"
# Each test sets its own preemption bound; LOOM_MAX_PREEMPTIONS overrides
# them all (3 makes the three-producer handshake take many minutes).
cargo test --release --manifest-path "$manifest"

miri_works() {
    cargo +nightly miri --version >/dev/null 2>&1
}

if ! miri_works && [[ "${CI:-}" == "true" ]]; then
    echo "== installing nightly with Miri (CI)"
    timeout 300 rustup toolchain install nightly --profile minimal \
        --component miri,rust-src || true
    timeout 300 cargo +nightly miri setup || true
fi

if miri_works; then
    echo "== Miri: cargo +nightly miri test --manifest-path $manifest"
    cargo +nightly miri test --manifest-path "$manifest"
else
    echo "skipped Miri: 'cargo +nightly miri' is not available" \
        "(rustup toolchain install nightly --profile minimal --component miri,rust-src)"
fi
