//! kmsctl itself, built in the tests' package so the tests can run it.

fn main() {
    std::process::exit(kmsctl::main());
}
