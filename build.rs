//! Rebuild when migrations or templates change: both are embedded at compile time.
//!
//! Release builds of the `herald` binary on x86-64 GNU/Linux also get two linker flags that
//! shrink what a running process keeps resident (P5, see the README's Performance table):
//!
//! - `-z pack-relative-relocs`: the binary's 70,000 relative relocations are stored as a
//!   bitmap (`DT_RELR`, 27 KB) instead of a 1.7 MB table the loader reads, and keeps mapped,
//!   at every start. It needs glibc 2.36 or later where the binary runs (the loader refuses
//!   an older one by name: `GLIBC_ABI_DT_RELR`), so it is only used when the C library of the
//!   building machine is 2.36 or later and the binary is built for that machine.
//! - `--icf=all`: identical functions (the same generic code instantiated for several types)
//!   are kept once.
//!
//! Both are understood by LLD, which rustc uses to link on x86-64 GNU/Linux since 1.90.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=templates");
    if packs_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}

/// Whether this is a release build for x86-64 GNU/Linux, on such a machine with glibc 2.36+.
fn packs_relocations() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != var("HOST")
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return false;
    }
    // "glibc 2.36"
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (2, 36)
}
