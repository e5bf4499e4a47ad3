/work/main/bench/rdkafka-peer/target/release/deps/proc_macro_crate-5181b289db6309fe.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/proc-macro-crate-3.5.0/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libproc_macro_crate-5181b289db6309fe.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/proc-macro-crate-3.5.0/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libproc_macro_crate-5181b289db6309fe.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/proc-macro-crate-3.5.0/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/proc-macro-crate-3.5.0/src/lib.rs:
