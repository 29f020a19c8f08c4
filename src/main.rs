use clap::Parser;

fn main() {
    adaresnet::cli::mark_start();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match adaresnet::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0 as clap does; a bad flag or value is one
        // line naming it (clap's own first line) and exit code 1, like every other error.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("error: bad command line");
            eprintln!("{line} (see --help)");
            std::process::exit(1);
        }
    };
    if let Err(e) = adaresnet::cli::run(cli) {
        // One line naming the cause and the fix; the chain of contexts joined with ": ".
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
