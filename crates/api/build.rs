//! Compiles `proto/ics/ledger/v1/*.proto` with protox (pure Rust, no system `protoc`), writes
//! the encoded `FileDescriptorSet` for tonic-reflection, and generates prost messages plus the
//! tonic client and server.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const FILES: [&str; 4] = [
    "ics/ledger/v1/common.proto",
    "ics/ledger/v1/commands.proto",
    "ics/ledger/v1/events.proto",
    "ics/ledger/v1/ledger.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    // protox includes imports and source info (the comments become rustdoc).
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // prost-build's compile_fds ignores file_descriptor_set_path, so write the set ourselves.
    fs::write(
        out.join("ics_ledger_v1_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    // tonic-prost-build never emits rerun-if-changed itself.
    println!("cargo:rerun-if-changed={}", root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}
