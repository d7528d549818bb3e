//! Compiles `proto/ics/{ledger,position,oversight,audit}/v1/*.proto` with protox (pure Rust, no system `protoc`), writes
//! the encoded `FileDescriptorSet` for tonic-reflection, and generates prost messages plus the
//! tonic client and server.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const LEDGER: [&str; 4] = [
    "ics/ledger/v1/common.proto",
    "ics/ledger/v1/commands.proto",
    "ics/ledger/v1/events.proto",
    "ics/ledger/v1/ledger.proto",
];
const POSITION: [&str; 1] = ["ics/position/v1/position.proto"];
const OVERSIGHT: [&str; 1] = ["ics/oversight/v1/oversight.proto"];
const AUDIT: [&str; 1] = ["ics/audit/v1/audit.proto"];
const SERIALIZE: &str = "#[derive(serde::Serialize)]";
const HEX: &str = "#[serde(serialize_with = \"crate::json::hex\")]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let paths = |names: &[&str]| -> Vec<PathBuf> { names.iter().map(|f| root.join(f)).collect() };
    let files: Vec<PathBuf> = paths(&LEDGER)
        .into_iter()
        .chain(paths(&POSITION))
        .chain(paths(&OVERSIGHT))
        .chain(paths(&AUDIT))
        .collect();
    // protox includes imports and source info (the comments become rustdoc).
    let all = protox::compile(&files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // prost-build's compile_fds ignores file_descriptor_set_path, so write the set ourselves.
    fs::write(
        out.join("ics_ledger_v1_descriptor.bin"),
        all.encode_to_vec(),
    )?;
    // Messages serialize to JSON (serde) for clients that print them (`icsctl --json`):
    // proto field names, enums as their numbers, bytes as lowercase hex.
    tonic_prost_build::configure()
        .type_attribute(".", SERIALIZE)
        // ReadStored's pages carry sled's values as they are: `Bytes` that own them, no copy.
        .bytes(".ics.ledger.v1.StoredPage.events")
        .build_client(true)
        .build_server(true)
        .compile_fds(protox::compile(paths(&LEDGER), [&root])?)?;
    // The position package refers to ledger messages, which live in `crate::pb`; generated
    // into its own folder so it cannot overwrite the ledger's file.
    let position_out = out.join("position");
    fs::create_dir_all(&position_out)?;
    tonic_prost_build::configure()
        .extern_path(".ics.ledger.v1", "crate::pb")
        .type_attribute(".", SERIALIZE)
        .field_attribute(".ics.position.v1.Basis.fingerprint", HEX)
        .field_attribute(".ics.position.v1.StatusReply.hash", HEX)
        .out_dir(&position_out)
        .build_client(true)
        .build_server(true)
        .compile_fds(protox::compile(paths(&POSITION), [&root])?)?;
    // The audit package, in its own folder.
    let audit_out = out.join("audit");
    fs::create_dir_all(&audit_out)?;
    tonic_prost_build::configure()
        .type_attribute(".", SERIALIZE)
        .field_attribute(".ics.audit.v1.Checkpoint.chain_hash", HEX)
        .field_attribute(".ics.audit.v1.Checkpoint.merkle_root", HEX)
        .field_attribute(".ics.audit.v1.Checkpoint.signature", HEX)
        .out_dir(&audit_out)
        .build_client(true)
        .build_server(true)
        .compile_fds(protox::compile(paths(&AUDIT), [&root])?)?;
    // The oversight package likewise, in its own folder.
    let oversight_out = out.join("oversight");
    fs::create_dir_all(&oversight_out)?;
    tonic_prost_build::configure()
        .extern_path(".ics.ledger.v1", "crate::pb")
        .extern_path(".ics.audit.v1", "crate::audit_pb")
        .type_attribute(".", SERIALIZE)
        .field_attribute(".ics.oversight.v1.Folded.hash", HEX)
        .field_attribute(".ics.oversight.v1.Financial.position_fingerprint", HEX)
        .out_dir(&oversight_out)
        .build_client(true)
        .build_server(true)
        .compile_fds(protox::compile(paths(&OVERSIGHT), [&root])?)?;
    // tonic-prost-build never emits rerun-if-changed itself.
    println!("cargo:rerun-if-changed={}", root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}
