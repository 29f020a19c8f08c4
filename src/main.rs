use clap::Parser;

fn main() {
    adaresnet::cli::mark_start();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = adaresnet::cli::Cli::parse();
    if let Err(e) = adaresnet::cli::run(cli) {
        // One line naming the cause and the fix; the chain of contexts joined with ": ".
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
