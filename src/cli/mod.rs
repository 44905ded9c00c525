//! The command-line front-end: resolves arguments and environment into
//! settings once, then runs one subcommand.

pub mod args;
mod chat;
pub mod exit;
mod output;
mod prompt;
mod providers;
mod send;
mod stream;

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use args::Cli;
use args::{Command, PromptArgs, ServeArgs};
pub use exit::Failure;

use crate::config::{ConfigError, LogFormat, Observability, Settings};
use crate::providers::{ChatRequest, Provider, Registry, Upstream};

/// Runs the parsed command line to completion, with the settings `main`
/// resolved (their error is reported by the commands that need them).
pub fn run(cli: Cli, settings: Result<Settings, ConfigError>) -> Result<(), Failure> {
    match cli.command {
        Command::Completions { shell } => {
            let names = settings.ok().map(|s| s.providers.names().collect());
            let mut command = args::command_with(names);
            let mut stdout = Vec::new();
            clap_complete::generate(shell, &mut command, "llmproxy", &mut stdout);
            output::Output::default().write(&stdout)
        }
        Command::Providers { json } => providers::list(&settings?, json),
        Command::Serve(args) => {
            let observability = Observability::from_env()?;
            let settings = Arc::new(settings?);
            if args.check_config {
                let registry = &settings.providers;
                let line = format!(
                    "configuration is valid: {} providers, {} model aliases\n",
                    registry.providers().len(),
                    registry.aliases().len()
                );
                return output::Output::default().write(line.as_bytes());
            }
            init_logging("info", observability.log_format);
            // This thread only accepts and coordinates; the worker threads
            // (`server::serve_with`) run their own runtimes.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)?;
            runtime.block_on(serve(args, settings, observability))
        }
        Command::Chat(args) => {
            let json = args.json;
            terminal(
                args.prompt,
                settings,
                false,
                move |upstream, provider, request, key| async move {
                    chat::chat(&upstream, provider, &request, key.as_deref(), json).await
                },
            )
        }
        Command::Stream(args) => {
            let raw = args.raw;
            terminal(
                args.prompt,
                settings,
                true,
                move |upstream, provider, request, key| async move {
                    stream::stream(&upstream, provider, &request, key.as_deref(), raw).await
                },
            )
        }
    }
}

/// Shared set-up of `chat` and `stream`: settings, provider or alias, key,
/// prompt, runtime, and Ctrl-C (which drops the upstream request and exits
/// 130).
fn terminal<F, Fut>(
    args: PromptArgs,
    settings: Result<Settings, ConfigError>,
    stream: bool,
    command: F,
) -> Result<(), Failure>
where
    F: FnOnce(Upstream, &'static Provider, ChatRequest, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    init_logging("warn", Observability::from_env()?.log_format);
    let mut settings = settings?;
    // The CLI is the client: it retries unless told otherwise.
    settings.default_retries = 2;
    if let Some(retries) = args.retries {
        settings.max_retries = Some(retries);
    }
    let settings = Arc::new(settings);
    let target = Target::resolve(&settings.providers, &args)?;
    let api_key = api_key(&args, target.provider)?;
    let mut request =
        prompt::build_request(&args, target.model, prompt::Stdin::from_process(), stream)?;
    request.max_tokens = request.max_tokens.or(target.max_tokens);
    request.temperature = request.temperature.or(target.temperature);
    let provider = target.provider;
    let upstream = Upstream::new(settings)?;
    // One worker thread besides the main one: the command runs on the main
    // thread, the Ctrl-C watchdog on the worker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    runtime.block_on(async move {
        // Stdout writes block: when a pipe reader stops reading, the command
        // cannot see Ctrl-C. The watchdog exits for it after a short grace:
        // the one exit code decided outside `main` (see its module doc).
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                std::process::exit(Failure::Interrupted.exit_code().into());
            }
        });
        // `biased`: the Ctrl-C handler is installed (on its first poll)
        // before the request can go out, so an early Ctrl-C still exits 130.
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
            result = command(upstream, provider, request, api_key) => result,
        }
    })
}

/// What the first argument of `chat`/`stream` and `-m` resolve to.
struct Target {
    provider: &'static Provider,
    model: String,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
}

impl Target {
    /// An alias gives its provider, model and defaults (`-m` still wins over
    /// its model, `LLMPROXY_MODEL` does not); a provider needs a model.
    fn resolve(registry: &Registry, args: &PromptArgs) -> Result<Self, Failure> {
        if let Some(alias) = registry.alias(&args.provider) {
            let model = match &args.model {
                Some(model) if !args.model_from_env => model.clone(),
                _ => alias.model.clone(),
            };
            return Ok(Target {
                provider: alias.provider,
                model,
                max_tokens: alias.max_tokens,
                temperature: alias.temperature,
            });
        }
        let provider = registry.provider(&args.provider)?;
        let model = args.model.clone().ok_or_else(|| {
            Failure::Usage("missing model: pass -m MODEL or set LLMPROXY_MODEL".to_owned())
        })?;
        Ok(Target {
            provider,
            model,
            max_tokens: None,
            temperature: None,
        })
    }
}

/// `--api-key`, else the provider's variables in order. A provider that
/// never takes a key gets none, whatever was given.
fn api_key(args: &PromptArgs, provider: &Provider) -> Result<Option<String>, Failure> {
    let found = args
        .api_key
        .clone()
        .or_else(|| {
            provider.key_variables.iter().find_map(|variable| {
                std::env::var(variable)
                    .ok()
                    .filter(|k| !k.trim().is_empty())
            })
        })
        .filter(|key| !key.trim().is_empty())
        .map(|key| key.trim().to_owned());
    match provider.key_to_send(found.as_deref()) {
        Ok(key) => Ok(key.map(str::to_owned)),
        Err(_) => {
            let variables = match provider.key_variables.as_slice() {
                [first, rest @ ..] if !rest.is_empty() => {
                    format!("{first} (or {})", rest.join(", "))
                }
                all => all.join(", "),
            };
            Err(Failure::Usage(format!(
                "missing API key: set {variables} or pass --api-key"
            )))
        }
    }
}

async fn serve(
    args: ServeArgs,
    settings: Arc<Settings>,
    observability: Observability,
) -> Result<(), Failure> {
    // Handlers first: a signal that arrives once we announce the address
    // must start a drain, not kill the process.
    let shutdown = shutdown_signal().map_err(anyhow::Error::from)?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| anyhow::anyhow!("could not listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(anyhow::Error::from)?;
    tracing::info!("listening on http://{address}");
    crate::server::serve_with(settings, observability, listener, shutdown).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Logs go to stderr (stdout is for data), at `RUST_LOG` or `default`, as
/// text or as one JSON object per line (`LOG_FORMAT`).
fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let colour = exit::colour_stderr() && std::io::stderr().is_terminal();
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        // Fields at the top level, next to timestamp, level and message.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    crate::server::set_log_format(format == LogFormat::Json, colour);
}
