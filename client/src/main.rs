//! `hotfixctl`: parse, run, print, exit with a code a script can branch on.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = hotfixctl::cli::Cli::parse();
    let mut stdout = std::io::stdout();
    if let Err(e) = hotfixctl::cli::run(cli, &mut stdout).await {
        if e.is_closed_pipe() {
            return;
        }
        eprintln!("hotfixctl: {e}");
        std::process::exit(e.code);
    }
}
