//! extbus binary: parses the command line, installs logging, and calls the library.
//! The only place that uses `anyhow` and installs a tracing subscriber.

use anyhow::Result;
use clap::Parser;
use extbus::cli::{admin, AclCmd, BusCmd, Cli, Command, ConfigCmd, PrincipalCmd, SchemaCmd};

// Many small, short-lived buffers per command (frames, JSON, store pages): mimalloc keeps
// them off glibc's consolidation paths, which took a tenth of the broker's time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        no_huge_pages();
    } else {
        // `extbus events tail | head -1`: a closed pipe ends a CLI command quietly, as it
        // does other Unix tools, instead of a panic in println!. The broker keeps ignoring
        // SIGPIPE: a peer closing its socket must never stop it.
        // SAFETY: restoring a signal's default disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Turns transparent huge pages off for the broker process. mimalloc asks for them
/// (`madvise`) on its memory, and the kernel then zeroes 2 MiB at each first touch of a
/// region: a tenth of the broker's time under an event flood went to that. With 4 KiB pages
/// only the pages used are zeroed (`cargo bench -p extbus --bench events`: 28.1-28.4 instead
/// of 31.3-31.9 broker CPU seconds for the same work).
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    // SAFETY: prctl with these arguments only sets a flag of this process.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        // Not Linux 3.15+, or refused: the broker works as before.
        eprintln!(
            "note: transparent huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = args.load()?;
            extbus::logging::init(&cfg.log);
            let rt = tokio::runtime::Runtime::new()?;
            let load = Box::new(move || args.load());
            rt.block_on(extbus::server::serve_reloading(cfg, load))
        }
        Command::Config(ConfigCmd::Print(args)) => admin::config_print(&args),
        Command::Config(ConfigCmd::Check { file, config }) => admin::config_check(file, config),
        Command::Principal(PrincipalCmd::Add {
            name,
            roles,
            orgs,
            config,
        }) => admin::principal_add(&name, &roles, &orgs, &config.config_args()),
        Command::Principal(PrincipalCmd::List { json, config }) => {
            admin::principal_list(json, &config.config_args())
        }
        Command::Principal(PrincipalCmd::Remove { name, config }) => {
            admin::principal_remove(&name, &config.config_args())
        }
        Command::Schema(SchemaCmd::Export { dir }) => admin::schema_export(&dir),
        Command::Bus(BusCmd::Sync { config }) => admin::bus_sync(&config.config_args()),
        Command::Acl(AclCmd::Export { format, config }) => {
            let cfg = config.config_args().load()?;
            print!("{}", extbus::cli::acl::render(&cfg, format)?);
            Ok(())
        }
        Command::Task(args) => extbus::cli::task::run(args),
        Command::Entity(args) => extbus::cli::entity::run(args),
        Command::Metadata(args) => extbus::cli::metadata::run(args),
        Command::Events(args) => extbus::cli::events::run(args),
        Command::Ext(args) => extbus::cli::ext::run(args),
        Command::Backup { dest, config } => admin::backup(&dest, &config.config_args()),
        Command::Completions { shell } => extbus::cli::docs::completions(shell),
        Command::Man => extbus::cli::docs::man(),
    }
}
