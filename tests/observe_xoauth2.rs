//! XOAUTH2 and token sources, against local servers only: a small IMAP responder that speaks
//! AUTHENTICATE XOAUTH2 the way Microsoft 365 does (including the error challenge that the
//! client must answer with an empty line), and a local HTTP token endpoint for the
//! client-credentials flow. The responder also refuses `SEARCH HEADER` and names its Junk
//! folder in French, so the SINCE fallback and SPECIAL-USE lookup are exercised end to end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use mailharness::observe::{
    observe, AuthMethod, ConnectOptions, ImapClient, ImapTarget, MailboxAccess, ObserveError,
    ObserveOptions, SearchMode, SecretSource, TokenProvider, TokenSource,
};
use mailharness::record::{AttemptRecord, FolderKind, ObservationStatus, RECORD_SCHEMA};
use mailharness::scenario::target::ImapTls;
use mailharness::vocab::{OutcomeClass, TlsMode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "qa@contoso.example";
const RUN: &str = "xoauth2-run";

/// What the IMAP responder saw.
#[derive(Default, Debug)]
struct Seen {
    /// Decoded XOAUTH2 initial responses.
    auth: Vec<String>,
    /// Whether the client answered the error challenge with an empty line.
    empty_answer: bool,
    /// Commands (verbs) received after authentication.
    commands: Vec<String>,
}

fn header_block(seq: &str, mid: &str) -> String {
    format!(
        "Message-ID: {mid}\r\nX-Harness-Run: {RUN}\r\nX-Harness-Seq: {seq}\r\n\
         Received: from a by b with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_X) via \
         Frontend Transport; Wed, 2 Jan 2030 17:40:34.250 +0000\r\n\r\n"
    )
}

/// Runs an IMAP responder; `sasl_ir` controls whether the initial response may be inline.
async fn imap_responder(sasl_ir: bool) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let seen = s2.clone();
            tokio::spawn(async move {
                let _ = serve(sock, sasl_ir, seen).await;
            });
        }
    });
    (port, seen)
}

async fn serve(sock: TcpStream, sasl_ir: bool, seen: Arc<Mutex<Seen>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let caps = if sasl_ir {
        "IMAP4rev1 SASL-IR AUTH=XOAUTH2 UIDPLUS"
    } else {
        "IMAP4rev1 AUTH=XOAUTH2 UIDPLUS"
    };
    w.write_all(format!("* OK [CAPABILITY {caps}] responder ready\r\n").as_bytes())
        .await?;
    let mut selected = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let mut parts = line.splitn(3, ' ');
        let tag = parts.next().unwrap_or("").to_string();
        let verb = parts.next().unwrap_or("").to_ascii_uppercase();
        let rest = parts.next().unwrap_or("").to_string();
        match verb.as_str() {
            "CAPABILITY" => {
                w.write_all(format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n").as_bytes())
                    .await?;
            }
            "AUTHENTICATE" => {
                let mut args = rest.split(' ');
                assert_eq!(args.next(), Some("XOAUTH2"));
                let b64 = match args.next() {
                    Some(b) => b.to_string(),
                    None => {
                        w.write_all(b"+ \r\n").await?;
                        let mut l = String::new();
                        r.read_line(&mut l).await?;
                        l.trim_end().to_string()
                    }
                };
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&raw).to_string();
                seen.lock().unwrap().auth.push(text.clone());
                let good = text.starts_with(&format!("user={USER}\x01auth=Bearer tok-"))
                    && text.ends_with("\x01\x01");
                if good {
                    w.write_all(
                        format!("{tag} OK [CAPABILITY {caps}] authenticated\r\n").as_bytes(),
                    )
                    .await?;
                } else {
                    let challenge = base64::engine::general_purpose::STANDARD.encode(
                        r#"{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}"#,
                    );
                    w.write_all(format!("+ {challenge}\r\n").as_bytes()).await?;
                    let mut answer = String::new();
                    r.read_line(&mut answer).await?;
                    seen.lock().unwrap().empty_answer = answer == "\r\n";
                    w.write_all(format!("{tag} NO AUTHENTICATE failed.\r\n").as_bytes())
                        .await?;
                }
            }
            "LIST" => {
                seen.lock().unwrap().commands.push("LIST".into());
                w.write_all(
                    format!(
                        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n\
                         * LIST (\\HasNoChildren \\Junk) \"/\" \"Courrier ind&AOk-sirable\"\r\n\
                         * LIST (\\HasNoChildren \\Trash) \"/\" Corbeille\r\n{tag} OK done\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
            }
            "EXAMINE" | "SELECT" => {
                selected = rest.trim_matches('"').to_string();
                seen.lock()
                    .unwrap()
                    .commands
                    .push(format!("{verb} {selected}"));
                w.write_all(
                    format!(
                        "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-ONLY] done\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
            }
            "UID" => {
                let sub = rest.split(' ').next().unwrap_or("").to_ascii_uppercase();
                seen.lock()
                    .unwrap()
                    .commands
                    .push(format!("UID {sub} {rest}"));
                let uid = if selected == "INBOX" { 5 } else { 9 };
                if sub == "SEARCH" && rest.to_ascii_uppercase().contains("HEADER") {
                    // A server that does not search custom headers.
                    w.write_all(
                        format!("{tag} BAD [CANNOT] HEADER search not supported\r\n").as_bytes(),
                    )
                    .await?;
                } else if sub == "SEARCH" {
                    w.write_all(format!("* SEARCH {uid}\r\n{tag} OK done\r\n").as_bytes())
                        .await?;
                } else if sub == "FETCH" {
                    assert!(
                        rest.contains("BODY.PEEK[HEADER.FIELDS ("),
                        "must PEEK: {rest}"
                    );
                    let (seq, mid) = if uid == 5 {
                        ("s/0", "<m0@x>")
                    } else {
                        ("s/1", "<m1@x>")
                    };
                    let h = header_block(seq, mid);
                    w.write_all(
                        format!(
                            "* 1 FETCH (UID {uid} INTERNALDATE \"02-Jan-2030 17:40:35 +0000\" \
                             BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n{h})\r\n{tag} OK done\r\n",
                            h.len()
                        )
                        .as_bytes(),
                    )
                    .await?;
                } else {
                    w.write_all(format!("{tag} OK done\r\n").as_bytes()).await?;
                }
            }
            "LOGOUT" => {
                w.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes())
                    .await?;
                return Ok(());
            }
            _ => {
                w.write_all(format!("{tag} BAD unknown\r\n").as_bytes())
                    .await?;
            }
        }
    }
}

/// A local token endpoint: `/ok` issues `tok-<n>` valid for 2 s, `/fail` echoes the secret
/// back in its error, the way some identity providers do.
async fn token_endpoint() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b2 = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let bodies = b2.clone();
            tokio::spawn(async move {
                let _ = http(sock, bodies).await;
            });
        }
    });
    (port, bodies)
}

async fn http(sock: TcpStream, bodies: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    let mut request_line = String::new();
    r.read_line(&mut request_line).await?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    let body = String::from_utf8_lossy(&body).to_string();
    let n = {
        let mut b = bodies.lock().unwrap();
        b.push(body.clone());
        b.len()
    };
    let (status, json) = if request_line.starts_with("POST /ok ") {
        (
            "200 OK",
            format!(r#"{{"token_type":"Bearer","expires_in":2,"access_token":"tok-{n}"}}"#),
        )
    } else if request_line.starts_with("POST /html ") {
        // A proxy's error page that echoes the request HTML-escaped: no scrub can know every
        // encoding, so none of the page may be shown.
        let escaped = body.replace('&', "&amp;").replace('%', "&#37;");
        (
            "502 Bad Gateway",
            format!("<html><body>{escaped}</body></html>"),
        )
    } else {
        let secret = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("client_secret="))
            .unwrap_or("")
            .to_string();
        (
            "401 Unauthorized",
            format!(
                r#"{{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: {secret}"}}"#
            ),
        )
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    r.get_mut().write_all(resp.as_bytes()).await?;
    r.get_mut().shutdown().await
}

fn provider(source: TokenSource) -> Arc<TokenProvider> {
    Arc::new(TokenProvider::new(
        source,
        mailharness::observe::tls_config(None).expect("tls"),
    ))
}

fn target(port: u16, provider: Arc<TokenProvider>) -> ImapTarget {
    ImapTarget {
        connect: ConnectOptions {
            host: "127.0.0.1".into(),
            port,
            tls: ImapTls::Plain,
            tls_config: None,
            timeout: Duration::from_secs(10),
        },
        auth: AuthMethod::Xoauth2(provider),
        mailboxes: vec![MailboxAccess {
            address: USER.into(),
            login: USER.into(),
            password: None,
        }],
    }
}

fn accepted(seq: &str, mid: &str) -> AttemptRecord {
    let t = chrono::DateTime::parse_from_rfc3339("2030-01-02T17:40:34Z")
        .expect("date")
        .with_timezone(&Utc);
    AttemptRecord {
        schema: RECORD_SCHEMA,
        run_id: RUN.into(),
        seq: seq.into(),
        attempt_id: format!("{seq}#1"),
        attempt: 1,
        retry_of: None,
        phase: "p".into(),
        burst: "b".into(),
        index: 0,
        sender: "primary".into(),
        source_ip: "127.0.0.2".parse().expect("ip"),
        destination: "127.0.0.1:25".into(),
        tls_mode: TlsMode::None,
        tls: None,
        message_id: mid.into(),
        recipients: vec![USER.into()],
        size: 1,
        connection: 1,
        connection_seq: 1,
        scheduled_at: t,
        scheduled_ms: 0.0,
        started_at: t,
        started_ms: 0.0,
        finished_at: t,
        finished_ms: 0.0,
        transcript: vec![],
        outcome: OutcomeClass::Accepted,
        reply: None,
        token: None,
        queue_id: None,
        error: None,
    }
}

fn opts() -> ObserveOptions {
    ObserveOptions {
        deadline: Duration::ZERO,
        poll_interval: Duration::from_millis(100),
        cleanup: false,
        search: SearchMode::Auto,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_with_token_file_observes_through_since_fallback() {
    let (port, seen) = imap_responder(true).await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("token");
    std::fs::write(&file, "tok-from-file\n").expect("token file");
    let t = target(port, provider(TokenSource::File(file)));
    let attempts = [accepted("s/0", "<m0@x>"), accepted("s/1", "<m1@x>")];
    let obs = observe(&t, RUN, &attempts, &opts()).await.expect("observe");
    let s = &obs.summary;
    assert_eq!((s.found, s.missing, s.anomalies), (2, 0, 0), "{s:?}");
    assert_eq!(s.since_fallback, vec![USER.to_string()]);
    let junk = &obs.records[1];
    assert_eq!(junk.folder, Some(FolderKind::Junk));
    assert_eq!(
        junk.folder_name.as_deref(),
        Some("Courrier ind&AOk-sirable")
    );
    // The Received date has milliseconds, so it is finer than INTERNALDATE and wins.
    assert_eq!(obs.records[0].latency_ms, Some(250.0));
    assert_eq!(obs.records[0].status, ObservationStatus::Found);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.auth,
        vec![format!("user={USER}\x01auth=Bearer tok-from-file\x01\x01")]
    );
    assert!(seen.commands.iter().any(|c| c.starts_with("EXAMINE")));
    assert!(
        !seen.commands.iter().any(|c| c.starts_with("SELECT")),
        "observation is read-only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_failure_challenge_is_answered_with_an_empty_line() {
    for sasl_ir in [true, false] {
        let (port, seen) = imap_responder(sasl_ir).await;
        let var = format!("MH_OBSERVE_TEST_BAD_TOKEN_{sasl_ir}");
        std::env::set_var(&var, "expired-token-value-123");
        let t = target(port, provider(TokenSource::Env(var)));
        let err = observe(&t, RUN, &[accepted("s/0", "<m0@x>")], &opts())
            .await
            .expect_err("must fail");
        let text = format!("{err} / {err:?}");
        assert!(matches!(err, ObserveError::Auth(_)), "{text}");
        assert!(text.contains("AUTHENTICATE failed"), "{text}");
        assert!(
            text.contains("\"status\":\"401\""),
            "challenge noted: {text}"
        );
        assert!(
            !text.contains("expired-token-value-123"),
            "token leaked: {text}"
        );
        let seen = seen.lock().unwrap();
        assert!(
            seen.empty_answer,
            "the challenge must be answered with an empty line"
        );
        assert_eq!(seen.auth.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_command_is_run_without_a_shell_and_cached() {
    let (port, seen) = imap_responder(false).await;
    let p = provider(TokenSource::Command(vec![
        "printf".into(),
        "tok-from-command\\n".into(),
    ]));
    let t = target(port, p.clone());
    let attempts = [accepted("s/0", "<m0@x>"), accepted("s/1", "<m1@x>")];
    observe(&t, RUN, &attempts, &opts()).await.expect("observe");
    observe(&t, RUN, &attempts, &opts())
        .await
        .expect("observe again");
    assert_eq!(p.fetch_count(), 1, "a command token is reused");
    assert_eq!(
        seen.lock().unwrap().auth[0],
        format!("user={USER}\x01auth=Bearer tok-from-command\x01\x01")
    );
    let failing = provider(TokenSource::Command(vec!["false".into()]));
    let e = failing.token().await.expect_err("false fails");
    assert!(e.to_string().contains("token_command"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_are_cached_until_expiry_and_used_for_xoauth2() {
    let (http_port, bodies) = token_endpoint().await;
    std::env::set_var("MH_OBSERVE_TEST_CLIENT_SECRET", "c1ient s3cret+/=");
    let p = provider(TokenSource::ClientCredentials {
        endpoint: format!("http://127.0.0.1:{http_port}/ok"),
        client_id: "app-id".into(),
        secret: SecretSource::Env("MH_OBSERVE_TEST_CLIENT_SECRET".into()),
        scope: "https://outlook.office365.com/.default".into(),
    });
    let t1 = p.token().await.expect("token");
    let t2 = p.token().await.expect("cached token");
    assert_eq!(t1.expose(), "tok-1");
    assert_eq!(t2.expose(), "tok-1");
    assert_eq!(
        bodies.lock().unwrap().len(),
        1,
        "second call must come from the cache"
    );
    {
        let b = bodies.lock().unwrap();
        let body = &b[0];
        assert!(body.contains("grant_type=client_credentials"), "{body}");
        assert!(body.contains("client_id=app-id"), "{body}");
        assert!(
            body.contains("scope=https%3A%2F%2Foutlook.office365.com%2F.default"),
            "{body}"
        );
        assert!(
            body.contains("client_secret=c1ient+s3cret%2B%2F%3D"),
            "{body}"
        );
    }
    // expires_in is 2 s: after it, a new token is fetched.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(p.token().await.expect("fresh token").expose(), "tok-2");
    assert_eq!(bodies.lock().unwrap().len(), 2);

    // The fetched token works for XOAUTH2.
    let (port, seen) = imap_responder(true).await;
    let t = target(port, p.clone());
    let obs = observe(&t, RUN, &[accepted("s/0", "<m0@x>")], &opts())
        .await
        .expect("observe");
    assert_eq!(obs.summary.found, 1);
    assert!(seen.lock().unwrap().auth[0].contains("auth=Bearer tok-2\x01"));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_errors_never_leak_the_client_secret() {
    let (http_port, bodies) = token_endpoint().await;
    std::env::set_var("MH_OBSERVE_TEST_CLIENT_SECRET_2", "very-secret value/42");
    let p = provider(TokenSource::ClientCredentials {
        endpoint: format!("http://127.0.0.1:{http_port}/fail"),
        client_id: "app-id".into(),
        secret: SecretSource::Env("MH_OBSERVE_TEST_CLIENT_SECRET_2".into()),
        scope: "s".into(),
    });
    let err = p.token().await.expect_err("401");
    let text = format!("{err} / {err:?}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    // The endpoint echoed the (form-encoded) secret: it must be scrubbed.
    assert!(bodies.lock().unwrap()[0].contains("very-secret+value%2F42"));
    assert!(!text.contains("very-secret"), "secret leaked: {text}");
    assert!(text.contains("[redacted]"), "{text}");

    // A missing secret variable is a configuration error naming the variable only.
    let p = provider(TokenSource::ClientCredentials {
        endpoint: format!("http://127.0.0.1:{http_port}/ok"),
        client_id: "app-id".into(),
        secret: SecretSource::Env("MH_OBSERVE_TEST_UNSET_SECRET".into()),
        scope: "s".into(),
    });
    let err = p.token().await.expect_err("unset");
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("MH_OBSERVE_TEST_UNSET_SECRET"));

    // An error page that is not JSON is reported by its size only.
    let p = provider(TokenSource::ClientCredentials {
        endpoint: format!("http://127.0.0.1:{http_port}/html"),
        client_id: "app-id".into(),
        secret: SecretSource::Env("MH_OBSERVE_TEST_CLIENT_SECRET_2".into()),
        scope: "s".into(),
    });
    let err = p.token().await.expect_err("502");
    let text = format!("{err} / {err:?}");
    assert!(
        text.contains("HTTP 502") && text.contains("not JSON"),
        "{text}"
    );
    assert!(!text.contains("very-secret"), "secret leaked: {text}");
    assert!(!text.contains("client_secret"), "body shown: {text}");
}

/// An IMAP server that refuses every login by echoing the command back, as some do.
async fn echoing_imap() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let _ = w
                    .write_all(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] echo\r\n")
                    .await;
                let mut line = String::new();
                let mut auth_tag = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_string();
                    let tag = cmd.split(' ').next().unwrap_or("*").to_string();
                    let reply = if cmd.to_ascii_uppercase().contains(" AUTHENTICATE ") {
                        auth_tag = tag;
                        // The failure challenge echoes the token too; then the tagged NO.
                        let echo = base64::engine::general_purpose::STANDARD
                            .encode(format!("{{\"status\":\"400\",\"echo\":\"{cmd}\"}}"));
                        format!("+ {echo}\r\n")
                    } else if cmd.is_empty() {
                        format!("{auth_tag} NO AUTHENTICATE failed\r\n")
                    } else {
                        format!("{tag} NO you said {cmd}\r\n")
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_echoes_the_login_does_not_leak_the_secret() {
    let port = echoing_imap().await;
    let opts = ConnectOptions {
        host: "127.0.0.1".into(),
        port,
        tls: ImapTls::Plain,
        tls_config: None,
        timeout: Duration::from_secs(10),
    };
    for password in ["Mailbox-Pw-77", "Pw\"with\\quotes-77"] {
        let mut c = ImapClient::connect(&opts).await.expect("connect");
        let err = c
            .login(USER, &mailharness::observe::Secret::new(password))
            .await
            .expect_err("refused");
        let text = format!("{err} / {err:?}");
        assert!(text.contains("rejected LOGIN"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("Pw"), "password leaked: {text}");
    }
    let mut c = ImapClient::connect(&opts).await.expect("connect");
    let token = "Bearer-Token-88";
    let err = c
        .authenticate_xoauth2(USER, &mailharness::observe::Secret::new(token))
        .await
        .expect_err("refused");
    let text = format!("{err} / {err:?}");
    assert!(text.contains("rejected XOAUTH2"), "{text}");
    let initial = base64::engine::general_purpose::STANDARD
        .encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"));
    assert!(
        !text.contains(token) && !text.contains(&initial),
        "token leaked: {text}"
    );
}
