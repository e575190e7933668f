//! The stdlib is embedded with `include_dir!`, which Cargo does not track: rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../../stdlib");
}
