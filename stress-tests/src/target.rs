//! Finding and preparing the program under test, driven only by its declaration
//! ([`TargetSpec`]) and the process boundary — the suite never links the target.
//!
//! - `STRESS_TARGET_SPEC=FILE`: a standalone spec; its `command` is the program (a path, relative to the
//!   spec file's dir if not found as given, or a name on `PATH`), unless `STRESS_TARGET_BIN` names it.
//! - otherwise the workspace package with `[package.metadata.stress-cache]` is found with `cargo metadata`;
//!   `STRESS_TARGET_BIN` names its binary, or it is built with its declared `failpoints`/`mutants` features
//!   and copied to `target/stress-cache/bin/<binary>-<features>` (cross-process flock, atomic rename);
//!   under nextest only the first test process of a run (`NEXTEST_RUN_ID`) builds, the others reuse it.
//!
//! Fixtures (model bytes and an input) come from the target's own `fixtures` command when declared, or
//! are deterministic byte blobs otherwise.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use stress_cache_metadata::{SpecError, TargetSpec};

/// Error preparing the target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The declaration is unreadable or invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `cargo metadata` failed.
    #[error("cargo metadata for {manifest} failed: {message}")]
    Metadata {
        /// Manifest used.
        manifest: String,
        /// The error.
        message: String,
    },
    /// No workspace package declares `[package.metadata.stress-cache]`.
    #[error("no package in workspace {workspace} declares [package.metadata.stress-cache]")]
    NoTargetPackage {
        /// Workspace root.
        workspace: String,
    },
    /// A command (build, fixtures) could not run or failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// What went wrong (exit status, stderr tail).
        message: String,
    },
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The program named by the spec was not found.
    #[error("target program {0:?} not found (not a file and not on PATH)")]
    ProgramNotFound(String),
    /// An earlier attempt in this process failed (the target is prepared once per process).
    #[error("preparing the target failed earlier in this process: {0}")]
    Earlier(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TargetError + 'a {
    move |source| TargetError::Io { action, path: path.display().to_string(), source }
}

/// The bytes the server serves for one model identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFixture {
    /// Model identity (`small`, `large`, ...).
    pub id: String,
    /// File name (the `{file_name}` placeholder).
    pub file_name: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
    /// SHA-256 of the body [`crate::server::Fault::Corrupt`] serves for this model: a file with exactly
    /// these bytes is what the server served, wrong, and the target kept.
    pub served_corrupt_sha256: String,
}

impl ModelFixture {
    /// A fixture from its bytes.
    pub fn new(id: &str, file_name: &str, bytes: Vec<u8>) -> Self {
        let sha256 = sha256_hex(&bytes);
        let served_corrupt_sha256 = sha256_hex(&crate::server::corrupt(&bytes));
        ModelFixture {
            id: id.to_string(),
            file_name: file_name.to_string(),
            bytes,
            sha256,
            served_corrupt_sha256,
        }
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Which of the target's command lines a process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCommand {
    /// `spec.args`: one end-to-end use of the cache.
    Run,
    /// `spec.gc_args` with `{max_bytes}`.
    Gc {
        /// The size budget.
        max_bytes: u64,
    },
    /// Explicit arguments (placeholders are filled too), e.g. `cache verify`.
    Args(Vec<String>),
}

/// Everything one target process gets: which model from where, which directories, which faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    /// Role in the scenario (`writer`, `reader`, `gc`, `recovery`, ...).
    pub role: String,
    /// Model identity requested (key of [`Target::models`]).
    pub model: String,
    /// URL the model is fetched from.
    pub url: String,
    /// Expected SHA-256 given to the target (`None` → empty / not given).
    pub sha256: Option<String>,
    /// Download cache directory.
    pub cache_dir: PathBuf,
    /// Compiled cache directory (`None` → the target's default).
    pub compiled_dir: Option<PathBuf>,
    /// Output directory (created by the harness).
    pub output_dir: PathBuf,
    /// Failpoint configuration, e.g. `cache.before_rename=return(crash)`.
    pub failpoints: Option<String>,
    /// Seeded bug.
    pub mutant: Option<String>,
    /// Command line to run.
    pub command: PlanCommand,
    /// Extra environment (applied after `spec.extra_env`).
    pub env: BTreeMap<String, String>,
    /// A syscall injection for the process's tracer (`strace -e inject=...`), e.g. a delay after its
    /// first rename so the moment right after a publish can be observed (needs the trace on).
    pub trace_inject: Option<String>,
}

impl ProcessPlan {
    /// A `writer` running `spec.args` for `model` from `url` on `cache_dir`, writing into `output_dir`.
    pub fn run(model: &str, url: &str, cache_dir: &Path, output_dir: &Path) -> Self {
        ProcessPlan {
            role: "writer".to_string(),
            model: model.to_string(),
            url: url.to_string(),
            sha256: None,
            cache_dir: cache_dir.to_path_buf(),
            compiled_dir: None,
            output_dir: output_dir.to_path_buf(),
            failpoints: None,
            mutant: None,
            command: PlanCommand::Run,
            env: BTreeMap::new(),
            trace_inject: None,
        }
    }

    /// Sets the role.
    pub fn role(mut self, role: &str) -> Self {
        self.role = role.to_string();
        self
    }

    /// Sets the expected checksum.
    pub fn sha256(mut self, sha256: Option<&str>) -> Self {
        self.sha256 = sha256.map(str::to_string);
        self
    }

    /// Sets the compiled cache dir.
    pub fn compiled_dir(mut self, dir: &Path) -> Self {
        self.compiled_dir = Some(dir.to_path_buf());
        self
    }

    /// Sets the failpoint configuration.
    pub fn failpoints(mut self, config: Option<&str>) -> Self {
        self.failpoints = config.map(str::to_string);
        self
    }

    /// Sets the seeded bug.
    pub fn mutant(mut self, mutant: Option<&str>) -> Self {
        self.mutant = mutant.map(str::to_string);
        self
    }

    /// Sets the command line.
    pub fn command(mut self, command: PlanCommand) -> Self {
        self.command = command;
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }
}

/// The prepared target: program, declaration, fixtures.
#[derive(Debug, Clone)]
pub struct Target {
    /// The program to execute.
    pub bin: PathBuf,
    /// Its declaration.
    pub spec: TargetSpec,
    /// Model fixtures by identity.
    pub models: BTreeMap<String, ModelFixture>,
    /// The input file (`{input}`).
    pub input: PathBuf,
    /// Cargo target directory of this workspace (for `stress-cache/` outputs).
    pub target_dir: PathBuf,
}

static SHARED: OnceLock<Result<Target, String>> = OnceLock::new();

impl Target {
    /// The target prepared once per test process ([`Target::from_env`] on first use).
    pub fn shared() -> Result<&'static Target, TargetError> {
        SHARED
            .get_or_init(|| Target::from_env().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| TargetError::Earlier(e.clone()))
    }

    /// Finds, builds (if needed) and prepares the target from the environment. Prefer [`Target::shared`]:
    /// this one builds every time it is called.
    pub fn from_env() -> Result<Target, TargetError> {
        let manifest = workspace_manifest();
        let metadata = workspace_metadata(&manifest)?;
        let target_dir = metadata.target_directory.clone().into_std_path_buf();
        let stress_dir = target_dir.join("stress-cache");

        let (spec, bin) =
            if let Some(spec_file) = std::env::var_os(stress_cache_metadata::suite_env::TARGET_SPEC) {
                let spec_file = PathBuf::from(spec_file);
                let spec = TargetSpec::from_spec_file(&spec_file)?;
                let command = spec.command.clone().unwrap_or_default();
                let bin = match std::env::var_os(stress_cache_metadata::suite_env::TARGET_BIN)
                    .filter(|v| !v.is_empty())
                {
                    Some(bin) => PathBuf::from(bin),
                    None => resolve_program(&command, spec_file.parent())?,
                };
                (spec, bin)
            } else {
                let package = metadata
                    .workspace_packages()
                    .into_iter()
                    .find(|p| p.metadata.get("stress-cache").is_some())
                    .ok_or_else(|| TargetError::NoTargetPackage {
                        workspace: metadata.workspace_root.to_string(),
                    })?;
                let origin = format!("[package.metadata.stress-cache] of {}", package.name);
                let spec = TargetSpec::from_package_metadata(&origin, &package.metadata["stress-cache"])?;
                let bin = match std::env::var_os(stress_cache_metadata::suite_env::TARGET_BIN) {
                    Some(bin) => PathBuf::from(bin),
                    None => build_target(&package.name, &spec, &manifest, &stress_dir.join("bin"))?,
                };
                (spec, bin)
            };
        let (models, input) = prepare_fixtures(&bin, &spec, &stress_dir)?;
        Ok(Target { bin, spec, models, input, target_dir })
    }

    /// Prepares a target given its declaration and program (e.g. a test binary such as
    /// `env!("CARGO_BIN_EXE_tiny-cache")`): fixtures as for [`Target::from_env`].
    pub fn prepare(spec: TargetSpec, bin: PathBuf) -> Result<Target, TargetError> {
        let manifest = workspace_manifest();
        let target_dir = workspace_metadata(&manifest)?.target_directory.into_std_path_buf();
        let (models, input) = prepare_fixtures(&bin, &spec, &target_dir.join("stress-cache"))?;
        Ok(Target { bin, spec, models, input, target_dir })
    }

    /// A target from explicit parts (tests, second targets).
    pub fn from_parts(
        bin: PathBuf,
        spec: TargetSpec,
        models: BTreeMap<String, ModelFixture>,
        input: PathBuf,
        target_dir: PathBuf,
    ) -> Self {
        Target { bin, spec, models, input, target_dir }
    }

    /// The fixture of a model identity. Panics with the known identities if it is unknown.
    pub fn model(&self, id: &str) -> &ModelFixture {
        self.models.get(id).unwrap_or_else(|| {
            panic!("unknown model {id:?}; the target has {:?}", self.models.keys().collect::<Vec<_>>())
        })
    }

    /// Model identities, sorted.
    pub fn model_ids(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// URL path under which the server must serve `model` (`spec.server.path` filled in).
    pub fn server_path(&self, model: &str) -> String {
        let fixture = self.model(model);
        self.spec.server.path.replace("{model}", &fixture.id).replace("{file_name}", &fixture.file_name)
    }

    /// File stem of the input (`{input_stem}`).
    pub fn input_stem(&self) -> String {
        self.input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Directory for scenario records and kept dirs: `<target dir>/stress-cache`.
    pub fn stress_dir(&self) -> PathBuf {
        self.target_dir.join("stress-cache")
    }

    /// Fills the placeholders of one argument for `plan`.
    pub fn fill(&self, template: &str, plan: &ProcessPlan) -> String {
        let file_name = self.models.get(&plan.model).map(|m| m.file_name.clone()).unwrap_or_default();
        let max_bytes = match plan.command {
            PlanCommand::Gc { max_bytes } => max_bytes.to_string(),
            _ => String::new(),
        };
        let compiled = plan.compiled_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
        let replacements = [
            ("{url}", plan.url.clone()),
            ("{sha256}", plan.sha256.clone().unwrap_or_default()),
            ("{cache_dir}", plan.cache_dir.display().to_string()),
            ("{compiled_dir}", compiled),
            ("{output_dir}", plan.output_dir.display().to_string()),
            ("{input_stem}", self.input_stem()),
            ("{input}", self.input.display().to_string()),
            ("{file_name}", file_name),
            ("{model}", plan.model.clone()),
            ("{max_bytes}", max_bytes),
            ("{out_dir}", plan.output_dir.display().to_string()),
        ];
        let mut out = template.to_string();
        for (key, value) in replacements {
            if out.contains(key) {
                out = out.replace(key, &value);
            }
        }
        out
    }

    /// Path of the metadata file `plan` makes the target write, if the target declares one.
    pub fn metadata_path(&self, plan: &ProcessPlan) -> Option<PathBuf> {
        self.spec.metadata_file.as_ref().map(|m| PathBuf::from(self.fill(&m.path, plan)))
    }

    /// The command for one process: arguments with placeholders filled, declared env vars set (URL,
    /// checksum or empty, cache and compiled dirs, failpoints, mutant), `extra_env`, then `plan.env`.
    /// Declared env names are always cleared first so nothing leaks from the harness's environment.
    pub fn command_for(&self, plan: &ProcessPlan) -> Command {
        let mut cmd = Command::new(&self.bin);
        let args: Vec<String> = match &plan.command {
            PlanCommand::Run => self.spec.args.clone(),
            PlanCommand::Gc { .. } => self.spec.gc_args.clone().unwrap_or_default(),
            PlanCommand::Args(args) => args.clone(),
        };
        cmd.args(args.iter().map(|a| self.fill(a, plan)));
        let names = &self.spec.env;
        for name in [
            &names.url,
            &names.sha256,
            &names.cache_dir,
            &names.compiled_dir,
            &names.failpoints,
            &names.mutant,
        ]
        .into_iter()
        .flatten()
        {
            cmd.env_remove(name);
        }
        if let Some(n) = &names.url {
            cmd.env(n, &plan.url);
        }
        if let Some(n) = &names.sha256 {
            cmd.env(n, plan.sha256.as_deref().unwrap_or(""));
        }
        if let Some(n) = &names.cache_dir {
            cmd.env(n, &plan.cache_dir);
        }
        if let (Some(n), Some(dir)) = (&names.compiled_dir, &plan.compiled_dir) {
            cmd.env(n, dir);
        }
        if let (Some(n), Some(fp)) = (&names.failpoints, &plan.failpoints) {
            cmd.env(n, fp);
        }
        if let (Some(n), Some(m)) = (&names.mutant, &plan.mutant) {
            cmd.env(n, m);
        }
        for (k, v) in self.spec.extra_env.iter().chain(&plan.env) {
            cmd.env(k, v);
        }
        cmd.current_dir(&plan.output_dir);
        cmd.stdin(Stdio::null());
        cmd
    }
}

fn workspace_metadata(manifest: &Path) -> Result<cargo_metadata::Metadata, TargetError> {
    cargo_metadata::MetadataCommand::new().manifest_path(manifest).no_deps().exec().map_err(|e| {
        TargetError::Metadata { manifest: manifest.display().to_string(), message: e.to_string() }
    })
}

fn workspace_manifest() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(|p| p.join("Cargo.toml")).unwrap_or_else(|| here.join("Cargo.toml"))
}

fn resolve_program(command: &str, spec_dir: Option<&Path>) -> Result<PathBuf, TargetError> {
    let path = Path::new(command);
    if command.contains('/') {
        if path.is_absolute() || path.exists() {
            return Ok(path.to_path_buf());
        }
        if let Some(dir) = spec_dir
            && dir.join(path).exists()
        {
            return Ok(dir.join(path));
        }
        return Err(TargetError::ProgramNotFound(command.to_string()));
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TargetError::ProgramNotFound(command.to_string()))
}

/// Holds an exclusive flock on a lock file for its lifetime.
struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(path: &Path) -> Result<Self, TargetError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("open lock", path))?;
        file.lock().map_err(io_err("lock", path))?;
        Ok(DirLock { _file: file })
    }
}

fn declared_features(spec: &TargetSpec) -> Vec<String> {
    [&spec.features.failpoints, &spec.features.mutants].into_iter().flatten().cloned().collect()
}

fn build_target(
    package: &str,
    spec: &TargetSpec,
    manifest: &Path,
    bin_dir: &Path,
) -> Result<PathBuf, TargetError> {
    let binary = spec.binary.clone().unwrap_or_else(|| package.to_string());
    let features = declared_features(spec);
    let suffix = if features.is_empty() { "default".to_string() } else { features.join("+") };
    let dest = bin_dir.join(format!("{binary}-{suffix}"));
    let _lock = DirLock::acquire(&bin_dir.join(".build.lock"))?;
    // Within one nextest run (one process per test), the first process builds; the others reuse it.
    let run_id = std::env::var("NEXTEST_RUN_ID").ok().filter(|v| !v.is_empty());
    let stamp = bin_dir.join(format!(".{binary}-{suffix}.run"));
    if let Some(run_id) = &run_id
        && dest.exists()
        && fs::read_to_string(&stamp).ok().as_deref() == Some(run_id.as_str())
    {
        return Ok(dest);
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    stress_cache_metadata::cargo_env::scrub_package_env(&mut cmd);
    cmd.arg("build").arg("--manifest-path").arg(manifest).args(["-p", package, "--bin", &binary]);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    cmd.arg("--message-format=json-render-diagnostics");
    cmd.stdin(Stdio::null());
    let line = format!("cargo build -p {package} --bin {binary} --features {}", features.join(","));
    let output =
        cmd.output().map_err(|e| TargetError::Command { command: line.clone(), message: e.to_string() })?;
    let mut executable = None;
    for message in cargo_metadata::Message::parse_stream(&output.stdout[..]).flatten() {
        if let cargo_metadata::Message::CompilerArtifact(artifact) = message
            && artifact.target.name == binary
            && let Some(exe) = artifact.executable
        {
            executable = Some(exe.into_std_path_buf());
        }
    }
    if !output.status.success() {
        return Err(TargetError::Command {
            command: line,
            message: format!("{}: {}", output.status, tail(&output.stderr, 2000)),
        });
    }
    let executable = executable.ok_or_else(|| TargetError::Command {
        command: line.clone(),
        message: format!("no executable artifact for binary {binary} in cargo's JSON output"),
    })?;
    copy_if_changed(&executable, &dest)?;
    if let Some(run_id) = &run_id {
        fs::write(&stamp, run_id).map_err(io_err("write", &stamp))?;
    }
    Ok(dest)
}

/// Copies `src` to `dest` atomically (temp file in the same dir + rename) unless `dest` has the same bytes.
fn copy_if_changed(src: &Path, dest: &Path) -> Result<(), TargetError> {
    let src_hash = file_sha256(src)?;
    if dest.exists() && file_sha256(dest)? == src_hash {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    fs::copy(src, &tmp).map_err(io_err("copy to", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", &tmp))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, dest).map_err(io_err("rename into", dest))?;
    Ok(())
}

/// A cheap identity of a file: SHA-256 (hex) of its size, mtime and inode.
fn file_identity(path: &Path) -> Result<String, TargetError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(io_err("stat", path))?;
    Ok(sha256_hex(format!("{}-{}.{}-{}", meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).as_bytes()))
}

/// Streaming SHA-256 of a file, lower-case hex.
pub fn file_sha256(path: &Path) -> Result<String, TargetError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(max);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    text[start..].to_string()
}

/// Produces (or reuses) the fixtures: `fixtures/<name>-<binary hash16>/` from the target's fixtures command,
/// or deterministic blobs in `fixtures/<name>-blobs/`.
fn prepare_fixtures(
    bin: &Path,
    spec: &TargetSpec,
    stress_dir: &Path,
) -> Result<(BTreeMap<String, ModelFixture>, PathBuf), TargetError> {
    let fixtures_root = stress_dir.join("fixtures");
    // Its own lock: fixtures need not wait for another process building a different binary.
    let _lock = DirLock::acquire(&fixtures_root.join(".fixtures.lock"))?;
    let name = spec.binary.clone().unwrap_or_else(|| spec.display_name().to_string());
    let Some(fixtures) = &spec.fixtures else {
        let dir = fixtures_root.join(format!("{name}-blobs"));
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let models = blob_models();
        for m in models.values() {
            write_if_different(&dir.join(&m.file_name), &m.bytes)?;
        }
        let input = dir.join("input.txt");
        write_if_different(&input, b"stress-cache input\n")?;
        return Ok((models, input));
    };
    // Keyed by the binary's identity (size, mtime, inode): cheap, and it changes whenever the binary is
    // rebuilt or replaced (the copy is replaced by rename only when its bytes change).
    let hash = file_identity(bin)?;
    let dir = fixtures_root.join(format!("{name}-{}", &hash[..16]));
    let stamp = dir.join(".complete");
    if !stamp.exists() {
        let tmp = fixtures_root.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        let args: Vec<String> =
            fixtures.args.iter().map(|a| a.replace("{out_dir}", &tmp.display().to_string())).collect();
        let line = format!("{} {}", bin.display(), args.join(" "));
        let output = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TargetError::Command { command: line.clone(), message: e.to_string() })?;
        if !output.status.success() {
            return Err(TargetError::Command {
                command: line,
                message: format!("{}: {}", output.status, tail(&output.stderr, 2000)),
            });
        }
        fs::write(tmp.join(".complete"), &hash).map_err(io_err("write", &tmp))?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).map_err(io_err("rename into", &dir))?;
    }
    let mut models = BTreeMap::new();
    for (id, file_name) in &fixtures.models {
        let path = dir.join(file_name);
        let bytes = fs::read(&path).map_err(io_err("read fixture", &path))?;
        models.insert(id.clone(), ModelFixture::new(id, file_name, bytes));
    }
    let input = match fixtures.inputs.first() {
        Some(first) => dir.join(first),
        None => {
            let input = dir.join("input.txt");
            write_if_different(&input, b"stress-cache input\n")?;
            input
        }
    };
    Ok((models, input))
}

fn write_if_different(path: &Path, bytes: &[u8]) -> Result<(), TargetError> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into", path))
}

/// Two deterministic byte blobs (`alpha`: 192 KiB, `beta`: 640 KiB) for targets without fixtures.
pub fn blob_models() -> BTreeMap<String, ModelFixture> {
    let mut models = BTreeMap::new();
    for (id, len, seed) in [("alpha", 192 * 1024, 0xa1fa_u64), ("beta", 640 * 1024, 0xbe7a_u64)] {
        models.insert(
            id.to_string(),
            ModelFixture::new(id, &format!("{id}.bin"), deterministic_bytes(len, seed)),
        );
    }
    models
}

/// `len` pseudo-random bytes from `seed` (xorshift64*; same on every machine).
pub fn deterministic_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_spec() -> TargetSpec {
        let text = r#"
            command = "/bin/true"
            args = ["get", "--url", "{url}", "--sha", "{sha256}", "--cache", "{cache_dir}", "--out", "{output_dir}/{input_stem}.txt", "{input}", "{model}/{file_name}"]
            gc-args = ["gc", "{max_bytes}"]
            extra-env = { TIMEOUT = "1" }
            [features]
            checksum = true
            [files]
            final = "*.bin"
            partial = "*.part"
        "#;
        let spec: TargetSpec = toml::from_str(text).unwrap();
        spec.validate("test").unwrap();
        spec
    }

    fn target(spec: TargetSpec) -> Target {
        Target::from_parts("/bin/true".into(), spec, blob_models(), "/in/bird.png".into(), "/t".into())
    }

    fn args_of(cmd: &Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn env_of(cmd: &Command, key: &str) -> Option<Option<String>> {
        cmd.get_envs().find(|(k, _)| *k == key).map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn placeholders_are_filled_in_args() {
        let t = target(args_spec());
        let plan = ProcessPlan::run("alpha", "http://127.0.0.1:1/a", Path::new("/c"), Path::new("/o"))
            .sha256(Some("ab"));
        let cmd = t.command_for(&plan);
        assert_eq!(
            args_of(&cmd),
            [
                "get",
                "--url",
                "http://127.0.0.1:1/a",
                "--sha",
                "ab",
                "--cache",
                "/c",
                "--out",
                "/o/bird.txt",
                "/in/bird.png",
                "alpha/alpha.bin"
            ]
        );
        assert_eq!(env_of(&cmd, "TIMEOUT"), Some(Some("1".into())));
        let gc = t.command_for(&plan.clone().command(PlanCommand::Gc { max_bytes: 42 }));
        assert_eq!(args_of(&gc), ["gc", "42"]);
    }

    #[test]
    fn env_names_are_set_and_cleared() {
        let mut spec = args_spec();
        spec.env.url = Some("T_URL".into());
        spec.env.sha256 = Some("T_SHA".into());
        spec.env.failpoints = Some("FAILPOINTS".into());
        spec.env.mutant = Some("T_MUTANT".into());
        spec.env.compiled_dir = Some("T_COMPILED".into());
        let t = target(spec);
        let plan = ProcessPlan::run("beta", "http://x/b", Path::new("/c"), Path::new("/o"))
            .failpoints(Some("a=return(crash)"))
            .env("TIMEOUT", "9");
        let cmd = t.command_for(&plan);
        assert_eq!(env_of(&cmd, "T_URL"), Some(Some("http://x/b".into())));
        assert_eq!(env_of(&cmd, "T_SHA"), Some(Some(String::new())), "no checksum → empty");
        assert_eq!(env_of(&cmd, "FAILPOINTS"), Some(Some("a=return(crash)".into())));
        assert_eq!(env_of(&cmd, "T_MUTANT"), Some(None), "no mutant → removed from the inherited env");
        assert_eq!(env_of(&cmd, "T_COMPILED"), Some(None));
        assert_eq!(env_of(&cmd, "TIMEOUT"), Some(Some("9".into())), "plan env wins over extra-env");
    }

    #[test]
    fn blobs_are_deterministic_and_distinct() {
        let a = blob_models();
        let b = blob_models();
        assert_eq!(a, b);
        assert_ne!(a["alpha"].sha256, a["beta"].sha256);
        assert_eq!(a["alpha"].bytes.len(), 192 * 1024);
    }
}
