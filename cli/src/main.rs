//! `strom`: a kcat-style command line Kafka client (see DESIGN.md "cli").
fn main() {}
