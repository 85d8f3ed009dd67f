//! Embeds the eBPF object that `cargo xtask build` compiled.
//!
//! xtask sets `MAP_TRACE_EBPF_OBJECT` to the object's path. Without it (plain `cargo build`,
//! `cargo test`, clippy on a machine without bpf-linker) an empty placeholder is embedded and the
//! binary refuses to trace with a message naming `cargo xtask build`.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=MAP_TRACE_EBPF_OBJECT");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("map-trace.bpf.o");
    match env::var_os("MAP_TRACE_EBPF_OBJECT") {
        Some(src) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&src).display());
            fs::copy(&src, &out).unwrap_or_else(|e| {
                panic!("copying eBPF object {}: {e}", PathBuf::from(&src).display())
            });
        }
        None => fs::write(&out, b"").expect("writing placeholder eBPF object"),
    }
}
