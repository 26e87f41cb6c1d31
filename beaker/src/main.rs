fn main() {
    std::process::exit(beaker::cli::main());
}
