//! `llmproxy serve` start-up: configuration errors name the variable and
//! exit 2, a taken port is a clear error, flags override the environment.

mod common;

use std::time::Duration;

use common::*;

fn serve(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"));
    command
        .arg("serve")
        .args(args)
        .env_clear()
        .current_dir(std::env::temp_dir());
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    for (variable, value) in [
        ("HTTP_TIMEOUT_SECONDS", "soon"),
        ("OPENAI_BASE_URL", "not a url"),
        ("MAX_BODY_BYTES", "-1"),
        ("OPENAI_MAX_TOKENS_FIELD", "tokens"),
        ("LOG_FORMAT", "xml"),
        ("LOG_FORMAT", "JSON"),
        ("METRICS", "yes"),
        ("METRICS", "0"),
    ] {
        let output = serve(&["--port", "0"], &[(variable, value)]);
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: invalid "), "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = serve(&["--port", &port], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("could not listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn port_comes_from_the_environment_and_the_flag_wins() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // PORT from the environment...
    let mut server = ServeProcess::start_with(&[], &[("PORT", &free.to_string())]).await;
    assert_eq!(server.url, format!("http://127.0.0.1:{free}"));
    server.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(5), server.child.wait()).await;
    // ...unless --port says otherwise.
    let server = ServeProcess::start_with(&["--port", "0"], &[("PORT", &free.to_string())]).await;
    assert_ne!(server.url, format!("http://127.0.0.1:{free}"));
}
