/work/main/bench/rdkafka-peer/target/release/deps/libz_sys-ba4bb5f39a198e8b.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libz-sys-1.1.31/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/liblibz_sys-ba4bb5f39a198e8b.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libz-sys-1.1.31/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/liblibz_sys-ba4bb5f39a198e8b.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libz-sys-1.1.31/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libz-sys-1.1.31/src/lib.rs:
