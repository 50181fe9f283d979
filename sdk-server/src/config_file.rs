//! `--config`: a server binary's flags from the platform's TOML file. The table
//! `[server.<binary>]` (`[server.registry]`, `[server.events]`, `[server.gateway]`) holds
//! the binary's flags by name (`ttl_secs = 30`, `allow_open_writes = true`, a list for a
//! repeatable flag); the rest of the file is the SDK's and the other binaries'. What the
//! file says counts as flags given first: a flag on the command line overrides it, and so
//! does an environment variable the flag reads (`SDK_REGISTRY_TOKEN`).
//!
//! Written here rather than taken from a crate: clap reads flags and environment only, and
//! the layered-configuration crates (figment, config) would bring a second parser for what
//! clap already checks (ranges, required pairs, value types) with its own messages.

use std::ffi::OsString;

use clap::{error::ErrorKind, Parser};

/// Parses the process's arguments as [`try_parse_args`] does; on an error prints it and
/// exits (status 2, as clap does).
pub fn parse_args<A: Parser>(binary: &str) -> A {
    try_parse_args(binary, std::env::args_os()).unwrap_or_else(|error| error.exit())
}

/// Parses `argv` (its first item the program) into `A`, with the flags of
/// `[server.<binary>]` in the file named by `A`'s `config` argument (`--config PATH`, or
/// the environment variable it reads) put first: a flag on the command line, or an
/// environment variable a flag reads, overrides the file. A key that names no flag, a
/// value of the wrong shape and a file that cannot be read are errors naming the file and
/// the key.
///
/// ```
/// #[derive(clap::Parser)]
/// struct Args {
///     #[arg(long)]
///     config: Option<std::path::PathBuf>,
///     #[arg(long, default_value_t = 90)]
///     ttl_secs: u64,
/// }
///
/// let dir = std::env::temp_dir().join(format!("sdk-server-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("platform.toml");
/// std::fs::write(&file, "[server.registry]\nttl_secs = 30\n").unwrap();
/// let config = file.to_str().unwrap();
///
/// let args: Args = sdk_server::try_parse_args("registry", ["registry", "--config", config]).unwrap();
/// assert_eq!(args.ttl_secs, 30);
/// let args: Args =
///     sdk_server::try_parse_args("registry", ["registry", "--config", config, "--ttl-secs", "5"]).unwrap();
/// assert_eq!(args.ttl_secs, 5, "a flag overrides the file");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn try_parse_args<A, I, T>(binary: &str, argv: I) -> Result<A, clap::Error>
where
    A: Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let mut command = A::command();
    if let Some(path) = config_path(&command, &argv) {
        let from_file = file_flags(&command, binary, &path)
            .map_err(|message| command.error(ErrorKind::InvalidValue, message))?;
        let at = argv.len().min(1);
        argv.splice(at..at, from_file);
        // The file's flags come first, so one given again on the command line wins. Without
        // a file a flag given twice stays an error, as clap makes it.
        command = command.args_override_self(true);
    }
    let matches = command.try_get_matches_from_mut(argv)?;
    A::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
}

/// The file named by `--config PATH`, `--config=PATH` or the `config` argument's
/// environment variable.
fn config_path(command: &clap::Command, argv: &[OsString]) -> Option<OsString> {
    let arg = command
        .get_arguments()
        .find(|arg| arg.get_id() == "config")?;
    let mut args = argv.iter().skip(1);
    while let Some(item) = args.next() {
        if item == "--config" {
            return args.next().cloned();
        }
        if let Some(path) = item.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(path.into());
        }
        if item == "--" {
            break;
        }
    }
    std::env::var_os(arg.get_env()?)
}

/// `[server.<binary>]` of the file at `path`, as flags.
fn file_flags(
    command: &clap::Command,
    binary: &str,
    path: &OsString,
) -> Result<Vec<OsString>, String> {
    let shown = std::path::Path::new(path).display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let file: toml::Table = text.parse().map_err(|e| format!("{shown}: {e}"))?;
    let Some(server) = file.get("server") else {
        return Ok(Vec::new());
    };
    let table = match server.get(binary) {
        None => return Ok(Vec::new()),
        Some(toml::Value::Table(table)) => table,
        Some(_) => return Err(format!("{shown}: `server.{binary}` must be a table")),
    };
    let mut flags = Vec::new();
    for (key, value) in table {
        let name = format!("server.{binary}.{key}");
        let id = key.replace('-', "_");
        let Some(arg) = command
            .get_arguments()
            .find(|arg| arg.get_id() == id.as_str() && id != "config")
        else {
            return Err(format!(
                "{shown}: unknown key `{name}` (expected one of: {})",
                known(command)
            ));
        };
        let Some(long) = arg.get_long() else {
            return Err(format!("{shown}: `{name}` cannot be set from the file"));
        };
        // An environment variable the flag reads beats the file, as a flag does.
        if arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some())
        {
            continue;
        }
        push_flag(&mut flags, long, value).map_err(|why| format!("{shown}: `{name}` {why}"))?;
    }
    Ok(flags)
}

/// `--long=value` for each value (a list repeats the flag; `true` is the bare flag, `false`
/// leaves it out).
fn push_flag(flags: &mut Vec<OsString>, long: &str, value: &toml::Value) -> Result<(), String> {
    let text = match value {
        toml::Value::Boolean(true) => {
            flags.push(format!("--{long}").into());
            return Ok(());
        }
        toml::Value::Boolean(false) => return Ok(()),
        toml::Value::Array(items) => {
            for item in items {
                if matches!(item, toml::Value::Array(_) | toml::Value::Boolean(_)) {
                    return Err("must be a list of strings or numbers".into());
                }
                push_flag(flags, long, item)?;
            }
            return Ok(());
        }
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Datetime(_) | toml::Value::Table(_) => {
            return Err("must be a string, a number, a boolean or a list".into());
        }
    };
    flags.push(format!("--{long}={text}").into());
    Ok(())
}

/// The keys the file may set: every flag's name but `config`'s.
fn known(command: &clap::Command) -> String {
    let names: Vec<String> = command
        .get_arguments()
        .filter(|arg| arg.get_long().is_some() && arg.get_id() != "config")
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .map(|arg| arg.get_id().to_string())
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::try_parse_args;

    #[derive(Debug, clap::Parser)]
    struct Args {
        #[arg(long, env = "SDK_SERVER_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=600))]
        ttl_secs: u64,
        #[arg(long, env = "SDK_SERVER_TEST_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        open: bool,
        #[arg(long)]
        network: Vec<String>,
        #[command(flatten)]
        serve: crate::ServeArgs,
    }

    /// A file holding `text`, in a directory of its own.
    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sdk-server-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("platform.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        try_parse_args(
            "registry",
            std::iter::once("registry").chain(argv.iter().copied()),
        )
    }

    #[test]
    fn the_file_sets_flags_and_the_command_line_overrides_them() {
        let path = file(
            "sets",
            "[server.registry]\nttl_secs = 30\nopen = true\nnetwork = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nidle-timeout-secs = 300\n\n[server.events]\nttl_secs = 7\n\n[services.users]\ninstances = []\n",
        );
        let config = path.to_str().expect("utf-8");
        let args = parse(&["--config", config]).expect("valid");
        assert_eq!(args.ttl_secs, 30);
        assert!(args.open);
        assert_eq!(args.network, ["10.0.0.0/8", "192.168.0.0/16"]);
        assert_eq!(
            args.serve.idle_timeout_secs, 300,
            "the flattened serving flags too"
        );
        let args = parse(&[&format!("--config={config}"), "--ttl-secs", "5"]).expect("valid");
        assert_eq!(args.ttl_secs, 5, "the command line wins");
        let args = parse(&["--ttl-secs", "5"]).expect("valid");
        assert_eq!(args.serve.idle_timeout_secs, 120, "no file, the defaults");
        assert!(
            parse(&["--ttl-secs", "5", "--ttl-secs", "6"]).is_err(),
            "without a file, a flag given twice is refused as before"
        );
    }

    #[test]
    fn an_environment_variable_a_flag_reads_beats_the_file() {
        let path = file("env", "[server.registry]\ntoken = \"from-file\"\n");
        let config = path.to_str().expect("utf-8");
        assert_eq!(
            parse(&["--config", config])
                .expect("valid")
                .token
                .as_deref(),
            Some("from-file")
        );
        std::env::set_var("SDK_SERVER_TEST_TOKEN", "from-env");
        let args = parse(&["--config", config]);
        std::env::remove_var("SDK_SERVER_TEST_TOKEN");
        assert_eq!(args.expect("valid").token.as_deref(), Some("from-env"));
    }

    #[test]
    fn a_bad_file_is_an_error_naming_the_file_and_the_key() {
        let unknown = file("unknown", "[server.registry]\nttl = 30\n");
        let error = parse(&["--config", unknown.to_str().expect("utf-8")])
            .expect_err("unknown key")
            .to_string();
        assert!(
            error.contains("unknown key `server.registry.ttl`"),
            "{error}"
        );
        assert!(
            error.contains("ttl_secs"),
            "the keys it knows are listed: {error}"
        );
        assert!(error.contains("platform.toml"), "{error}");

        let range = file("range", "[server.registry]\nttl_secs = 0\n");
        let error = parse(&["--config", range.to_str().expect("utf-8")])
            .expect_err("out of range")
            .to_string();
        assert!(error.contains("--ttl-secs"), "clap's own check: {error}");

        let shape = file("shape", "[server.registry]\nttl_secs = { a = 1 }\n");
        let error = parse(&["--config", shape.to_str().expect("utf-8")])
            .expect_err("a table")
            .to_string();
        assert!(
            error.contains("`server.registry.ttl_secs` must be"),
            "{error}"
        );

        let error = parse(&["--config", "/nonexistent/platform.toml"])
            .expect_err("no file")
            .to_string();
        assert!(
            error.contains("cannot read /nonexistent/platform.toml"),
            "{error}"
        );

        let broken = file("broken", "[server.registry\n");
        assert!(parse(&["--config", broken.to_str().expect("utf-8")]).is_err());
    }
}
