//! Links the system PocketSphinx (Debian's libpocketsphinx-dev / libsphinxbase-dev) for
//! `providers::stt::sphinx_sys`; it never builds or bundles a speech engine itself.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Prefer pkg-config's answer (it knows the multiarch directory); the plain names work
    // wherever the libraries sit on the default search path.
    let from_pkg_config = Command::new("pkg-config")
        .args(["--libs", "pocketsphinx", "sphinxbase"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    match from_pkg_config {
        Some(flags) => {
            for flag in flags.split_whitespace() {
                if let Some(dir) = flag.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={dir}");
                } else if let Some(lib) = flag.strip_prefix("-l") {
                    // sphinxad is the microphone layer (it drags in PulseAudio); unused here.
                    if lib != "sphinxad" {
                        println!("cargo:rustc-link-lib={lib}");
                    }
                }
            }
        }
        None => {
            println!(
                "cargo:warning=pkg-config found no pocketsphinx; install libpocketsphinx-dev and libsphinxbase-dev"
            );
            println!("cargo:rustc-link-lib=pocketsphinx");
            println!("cargo:rustc-link-lib=sphinxbase");
        }
    }
}
