//! `cargo stress-cache`: a thin binary over the `cargo_stress_cache` library.

fn main() {
    std::process::exit(cargo_stress_cache::main_with_args(std::env::args_os()));
}
