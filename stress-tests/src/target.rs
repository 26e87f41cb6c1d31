//! The program under test as the suite drives it, by its declaration ([`TargetSpec`]) and the process
//! boundary only — the suite never links the target.
//!
//! The target comes from `stress_cache_runner::suite`: handed over by `cargo stress-cache` in the
//! environment (`STRESS_TARGET_SPEC`, `STRESS_TARGET_BIN`, `STRESS_FIXTURES`: no cargo runs here), or,
//! for a test binary started without the CLI, found and built by the runner by the CLI's own rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use stress_cache_metadata::{FixtureSet, SuiteEnv, TargetSpec};
use stress_cache_runner::RunnerError;

/// Error preparing the target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The runner could not find, build or prepare it.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The suite environment is malformed.
    #[error(transparent)]
    Env(#[from] stress_cache_metadata::suite_env::BadValue),
    /// A fixture file could not be read.
    #[error("cannot read fixture {path}: {source}")]
    Fixture {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An earlier attempt in this process failed (the target is prepared once per process).
    #[error("preparing the target failed earlier in this process: {0}")]
    Earlier(String),
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
    stress_cache_runner::fixtures::sha256_hex(bytes)
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
    /// `spec.verify_args`: the target's check of its cache (loads no model).
    Verify,
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
    /// A real `RLIMIT_NOFILE` for the process (set before exec), e.g. 16 in the resource-exhaustion
    /// scenarios; `None` inherits the harness's.
    pub nofile_limit: Option<u64>,
    /// Run without the capabilities that let root ignore permission bits, so a read-only mode binds it.
    pub no_dac_override: bool,
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
            nofile_limit: None,
            no_dac_override: false,
        }
    }

    /// Runs the process without root's permission override ([`crate::orchestrator::drop_dac_override`]).
    pub fn without_dac_override(mut self) -> Self {
        self.no_dac_override = true;
        self
    }

    /// Runs the process with `RLIMIT_NOFILE` = `n`.
    pub fn nofile_limit(mut self, n: u64) -> Self {
        self.nofile_limit = Some(n);
        self
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
        // A shrunk plan's disarmed failpoints are dropped here, the one place every armed process goes.
        self.failpoints = config.and_then(crate::replay::armed);
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
    /// `<target dir>/stress-cache`: records and temp dirs go here when the environment names no place.
    pub stress_dir: PathBuf,
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

    /// The target from the environment (see the module doc). Prefer [`Target::shared`]: without a
    /// handed-over target this one may build.
    pub fn from_env() -> Result<Target, TargetError> {
        let prepared = stress_cache_runner::suite::prepare(&SuiteEnv::from_env()?, &workspace_manifest())?;
        Target::from_fixture_set(prepared.bin, prepared.spec, &prepared.fixtures, prepared.stress_dir)
    }

    /// Prepares a target given its declaration and program (e.g. a test binary such as
    /// `env!("CARGO_BIN_EXE_tiny-cache")`), its fixtures produced under `dir` (e.g.
    /// `env!("CARGO_TARGET_TMPDIR")`).
    pub fn prepare(spec: TargetSpec, bin: PathBuf, dir: &Path) -> Result<Target, TargetError> {
        let (_, set) = stress_cache_runner::fixtures::prepare(&bin, &spec, &dir.join("fixtures"))?;
        Target::from_fixture_set(bin, spec, &set, dir.to_path_buf())
    }

    fn from_fixture_set(
        bin: PathBuf,
        spec: TargetSpec,
        set: &FixtureSet,
        stress_dir: PathBuf,
    ) -> Result<Target, TargetError> {
        let mut models = BTreeMap::new();
        for m in &set.models {
            let bytes = std::fs::read(&m.path)
                .map_err(|source| TargetError::Fixture { path: m.path.display().to_string(), source })?;
            models.insert(m.id.clone(), ModelFixture::new(&m.id, &m.file_name, bytes));
        }
        Ok(Target { bin, spec, models, input: set.input.clone(), stress_dir })
    }

    /// A target from explicit parts (tests, second targets).
    pub fn from_parts(
        bin: PathBuf,
        spec: TargetSpec,
        models: BTreeMap<String, ModelFixture>,
        input: PathBuf,
        stress_dir: PathBuf,
    ) -> Self {
        Target { bin, spec, models, input, stress_dir }
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

    /// Directory for scenario records and kept dirs when the environment names none.
    pub fn stress_dir(&self) -> PathBuf {
        self.stress_dir.clone()
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
            PlanCommand::Verify => self.spec.verify_args.clone().unwrap_or_default(),
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

/// The target's declaration, without building or preparing it: for test harnesses that list one test
/// per declared failpoint or seeded bug.
pub fn declared_spec() -> Result<TargetSpec, TargetError> {
    Ok(stress_cache_runner::suite::declared_spec(&SuiteEnv::from_env()?, &workspace_manifest())?)
}

fn workspace_manifest() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(|p| p.join("Cargo.toml")).unwrap_or_else(|| here.join("Cargo.toml"))
}

/// The deterministic blobs a target without declared fixtures is served (see
/// `stress_cache_runner::fixtures::blob_models`), as fixtures.
pub fn blob_models() -> BTreeMap<String, ModelFixture> {
    stress_cache_runner::fixtures::blob_models()
        .into_iter()
        .map(|(id, (file_name, bytes))| (id.clone(), ModelFixture::new(&id, &file_name, bytes)))
        .collect()
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
