/work/main/bench/rdkafka-peer/target/release/deps/equivalent-a70cb894619e4438.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libequivalent-a70cb894619e4438.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libequivalent-a70cb894619e4438.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/equivalent-1.0.3/src/lib.rs:
