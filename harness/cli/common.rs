//! The flags every command spells the same way, and what several commands share.

use std::path::{Path, PathBuf};

use clap::Args;
use mailharness::scenario::{self, LoadedTarget};

use super::error::CliError;

/// `--target`: where mail goes.
#[derive(Debug, Clone, Args)]
pub struct TargetOpt {
    /// The target file (default: the embedded simulator, scenarios/targets/sim.toml).
    #[arg(long, value_name = "TARGET.TOML")]
    pub target: Option<PathBuf>,
}

impl TargetOpt {
    /// Loads the target file, or the built-in simulator target.
    pub fn load(&self) -> Result<LoadedTarget, CliError> {
        Ok(scenario::load_target(self.target.as_deref())?)
    }
}

/// `--json`: the result as one schema-versioned JSON document on stdout.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonOpt {
    /// Print the result as one JSON document (its schema: schemas/<command>.schema.json).
    #[arg(long)]
    pub json: bool,
}

/// `--no-progress`: no bars, even on a terminal (the finished-burst lines are still printed).
#[derive(Debug, Clone, Copy, Args)]
pub struct ProgressOpt {
    /// No progress bars, even on a terminal (each burst's line is still printed when it ends).
    #[arg(long)]
    pub no_progress: bool,
}

impl ProgressOpt {
    /// The progress display these flags ask for.
    pub fn progress(self) -> mailharness::send::Progress {
        if self.no_progress {
            mailharness::send::Progress::hidden()
        } else {
            mailharness::send::Progress::stderr()
        }
    }
}

/// `--out`: where a command writes its files. `--reports` and `--report-dir` are the older
/// names, kept hidden so scripts written for them still work.
#[derive(Debug, Clone, Args)]
pub struct OutOpt {
    /// Where files are written (run directories, confirm reports).
    #[arg(long, value_name = "DIR", default_value = "reports", aliases = ["reports", "report-dir"])]
    pub out: PathBuf,
}

/// The async runtime every command uses (multi-threaded: the simulator runs beside the clients).
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// Reads the file at `path`, or stdin for `-`; a failure names `flag`.
pub fn read_input(flag: &'static str, path: &Path) -> Result<Vec<u8>, CliError> {
    use std::io::Read as _;
    let read = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).map(|_| b)
    } else {
        std::fs::read(path)
    };
    read.map_err(|source| CliError::Input {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file whole: a temporary file beside it, then a rename, so no reader sees half of it.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), CliError> {
    let tmp = path.with_extension("tmp");
    let err = |source| CliError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
