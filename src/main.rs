fn main() {
    std::process::exit(nginx_rs::cli::main());
}
