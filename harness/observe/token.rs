//! Secrets and XOAUTH2 bearer tokens: from an env var, a file, a command, or the OAuth 2.0
//! client-credentials flow against a token endpoint (cached until shortly before it expires).
//!
//! Secrets are read at the moment they are needed and are never formatted: `Secret` has a
//! redacting `Debug` and no `Display`, and token-endpoint error bodies are scrubbed of the client
//! secret before they reach an error message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::ObserveError;
use crate::scenario::target::OAuthSettings;

/// Microsoft's scope for IMAP with app-only tokens.
pub const DEFAULT_SCOPE: &str = "https://outlook.office365.com/.default";
/// How long a token from a command is reused: commands (az, a vault CLI) can be slow.
const COMMAND_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Timeout for a token request or command.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest token-endpoint response read.
const MAX_BODY: usize = 1024 * 1024;

/// A secret string (password, token, client secret): never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from an environment variable (error names the variable, never the value).
    pub fn from_env(var: &str, what: &str) -> Result<Secret, ObserveError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
            Ok(_) => Err(ObserveError::Config(format!(
                "{what}: environment variable {var} is empty"
            ))),
            Err(_) => Err(ObserveError::Config(format!(
                "{what}: environment variable {var} is not set"
            ))),
        }
    }

    /// Reads a secret from a file, trimmed of surrounding whitespace.
    pub fn from_file(path: &Path, what: &str) -> Result<Secret, ObserveError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ObserveError::Config(format!("{what}: cannot read {}: {e}", path.display()))
        })?;
        let v = text.trim();
        if v.is_empty() {
            return Err(ObserveError::Config(format!(
                "{what}: {} is empty",
                path.display()
            )));
        }
        Ok(Secret(v.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Where a secret lives: an env var or a file (never the target file itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret now.
    pub fn read(&self, what: &str) -> Result<Secret, ObserveError> {
        match self {
            SecretSource::Env(v) => Secret::from_env(v, what),
            SecretSource::File(p) => Secret::from_file(p, what),
        }
    }
}

/// Where an XOAUTH2 token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable holding the token.
    Env(String),
    /// A file holding the token.
    File(PathBuf),
    /// A command (argv) printing the token on stdout.
    Command(Vec<String>),
    /// OAuth 2.0 client credentials against a token endpoint.
    ClientCredentials {
        /// The token endpoint URL (https, or http for loopback only).
        endpoint: String,
        /// The application (client) id.
        client_id: String,
        /// Where the client secret lives.
        secret: SecretSource,
        /// The scope asked for.
        scope: String,
    },
}

impl TokenSource {
    /// Chooses the one source an `[imap.oauth]` table names; errors when none or several do.
    pub fn from_settings(o: &OAuthSettings) -> Result<TokenSource, ObserveError> {
        if o.token.is_some() || o.client_secret.is_some() {
            return Err(ObserveError::Config(
                "[imap.oauth]: secrets never live in target files; use token_env/token_file/\
                 token_command or client_secret_env/client_secret_file"
                    .into(),
            ));
        }
        // Counted the way target validation counts it: client_id names the flow.
        let count = [
            o.token_env.is_some(),
            o.token_file.is_some(),
            o.token_command.is_some(),
            o.client_id.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count != 1 {
            return Err(ObserveError::Config(format!(
                "[imap.oauth] must name exactly one token source (token_env, token_file, \
                 token_command, or the client-credentials settings); it names {count}"
            )));
        }
        if let Some(v) = &o.token_env {
            return Ok(TokenSource::Env(v.clone()));
        }
        if let Some(p) = &o.token_file {
            return Ok(TokenSource::File(PathBuf::from(p)));
        }
        if let Some(argv) = &o.token_command {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(ObserveError::Config(
                    "[imap.oauth] token_command is empty".into(),
                ));
            }
            return Ok(TokenSource::Command(argv.clone()));
        }
        TokenSource::from_client_credentials(o)
    }

    /// The client-credentials source: client id, exactly one secret source, and the endpoint
    /// (given, or Microsoft's for the tenant id).
    fn from_client_credentials(o: &OAuthSettings) -> Result<TokenSource, ObserveError> {
        let client_id = o.client_id.clone().ok_or_else(|| {
            ObserveError::Config("[imap.oauth] client credentials need client_id".into())
        })?;
        let secret = match (&o.client_secret_env, &o.client_secret_file) {
            (Some(v), None) => SecretSource::Env(v.clone()),
            (None, Some(p)) => SecretSource::File(PathBuf::from(p)),
            _ => {
                return Err(ObserveError::Config(
                    "[imap.oauth] client credentials need exactly one of client_secret_env \
                     or client_secret_file"
                        .into(),
                ))
            }
        };
        let endpoint = match (&o.token_endpoint, &o.tenant_id) {
            (Some(e), _) => e.clone(),
            (None, Some(t)) => microsoft_token_endpoint(t)?,
            (None, None) => {
                return Err(ObserveError::Config(
                    "[imap.oauth] client credentials need tenant_id or token_endpoint".into(),
                ))
            }
        };
        Endpoint::parse(&endpoint)?;
        Ok(TokenSource::ClientCredentials {
            endpoint,
            client_id,
            secret,
            scope: o.scope.clone().unwrap_or_else(|| DEFAULT_SCOPE.to_string()),
        })
    }
}

/// Microsoft's token endpoint for a tenant id (a GUID or domain name, checked since it becomes
/// part of the URL).
fn microsoft_token_endpoint(tenant_id: &str) -> Result<String, ObserveError> {
    let t = tenant_id;
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(ObserveError::Config(format!(
            "[imap.oauth] tenant_id {t:?} is not a GUID or domain name"
        )));
    }
    Ok(format!(
        "https://login.microsoftonline.com/{t}/oauth2/v2.0/token"
    ))
}

/// Hands out bearer tokens, fetching or re-reading them as needed; shared by all mailboxes.
pub struct TokenProvider {
    source: TokenSource,
    tls: Arc<rustls::ClientConfig>,
    cache: Mutex<Option<(Secret, Instant)>>,
    requests: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    /// A provider for this source; `tls` verifies an https token endpoint.
    pub fn new(source: TokenSource, tls: Arc<rustls::ClientConfig>) -> TokenProvider {
        TokenProvider {
            source,
            tls,
            cache: Mutex::new(None),
            requests: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The configured source.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// How many times the command ran or the endpoint was asked (for tests and diagnostics).
    pub fn fetch_count(&self) -> u32 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets a cached token (after the server rejected it, say).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    /// A current token: from the cache while it is valid, else freshly obtained.
    pub async fn token(&self) -> Result<Secret, ObserveError> {
        match &self.source {
            // Re-read every time: whoever maintains the variable or file may have refreshed it.
            TokenSource::Env(v) => Secret::from_env(v, "XOAUTH2 token"),
            TokenSource::File(p) => Secret::from_file(p, "XOAUTH2 token"),
            TokenSource::Command(argv) => {
                let mut cache = self.cache.lock().await;
                if let Some((t, until)) = cache.as_ref() {
                    if Instant::now() < *until {
                        return Ok(t.clone());
                    }
                }
                self.requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = run_token_command(argv).await?;
                *cache = Some((t.clone(), Instant::now() + COMMAND_TOKEN_TTL));
                Ok(t)
            }
            TokenSource::ClientCredentials {
                endpoint,
                client_id,
                secret,
                scope,
            } => {
                let mut cache = self.cache.lock().await;
                if let Some((t, until)) = cache.as_ref() {
                    if Instant::now() < *until {
                        return Ok(t.clone());
                    }
                }
                let client_secret = secret.read("OAuth client secret")?;
                self.requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (t, lifetime) =
                    client_credentials(&self.tls, endpoint, client_id, &client_secret, scope)
                        .await?;
                // Renew a little early so a token never expires between fetch and use.
                let margin = (lifetime / 10).min(Duration::from_secs(60));
                *cache = Some((t.clone(), Instant::now() + lifetime.saturating_sub(margin)));
                Ok(t)
            }
        }
    }
}

/// Runs a token command (no shell) and returns its trimmed stdout.
async fn run_token_command(argv: &[String]) -> Result<Secret, ObserveError> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        // The command's diagnostics go to the operator's terminal; they are never captured into
        // errors, since a failing credential helper may print what it was given.
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let out = tokio::time::timeout(TOKEN_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            ObserveError::Token(format!(
                "token_command {:?} did not finish within {}s",
                argv[0],
                TOKEN_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| ObserveError::Token(format!("cannot run token_command {:?}: {e}", argv[0])))?;
    if !out.status.success() {
        return Err(ObserveError::Token(format!(
            "token_command {:?} failed ({})",
            argv[0], out.status
        )));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| {
        ObserveError::Token(format!(
            "token_command {:?} printed something that is not UTF-8",
            argv[0]
        ))
    })?;
    let t = text.trim();
    if t.is_empty() || t.contains(char::is_whitespace) {
        return Err(ObserveError::Token(format!(
            "token_command {:?} must print exactly one token",
            argv[0]
        )));
    }
    Ok(Secret(t.to_string()))
}

/// A parsed `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, ObserveError> {
        let shown = redact_url(url);
        let bad = |why: &str| ObserveError::Config(format!("token endpoint {shown:?}: {why}"));
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("must not carry credentials"));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            let close = h.find(']').ok_or_else(|| bad("unclosed IPv6 address"))?;
            let port = match h[close + 1..].strip_prefix(':') {
                Some(p) => Some(p),
                None if h[close + 1..].is_empty() => None,
                None => return Err(bad("bad port")),
            };
            (h[..close].to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if https => 443,
            None => 80,
        };
        if !https && !is_loopback_host(&host) {
            return Err(bad("plain http is allowed only for loopback hosts"));
        }
        Ok(Endpoint {
            https,
            host,
            port,
            path: path.to_string(),
        })
    }
}

/// A URL fit for an error message: user information and the query, where secrets could be, are
/// masked.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (rest, query) = match rest.find('?') {
        Some(i) => (&rest[..i], "?<redacted>"),
        None => (rest, ""),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(i) => format!("<redacted>{}", &authority[i..]),
        None => authority.to_string(),
    };
    format!("{scheme}{authority}{path}{query}")
}

/// Whether a host is loopback (plain text is allowed only there).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Removes every occurrence of the secret (raw and form-encoded) from text, and shortens it.
fn scrub(text: &str, secret: &Secret) -> String {
    super::imap::clip_redacted(
        text,
        &[secret.expose().to_string(), form_encode(secret.expose())],
    )
}

/// One client-credentials request: the token and its lifetime.
async fn client_credentials(
    tls: &Arc<rustls::ClientConfig>,
    url: &str,
    client_id: &str,
    client_secret: &Secret,
    scope: &str,
) -> Result<(Secret, Duration), ObserveError> {
    let ep = Endpoint::parse(url)?;
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        form_encode(client_id),
        form_encode(client_secret.expose()),
        form_encode(scope)
    );
    let (status, bytes) = tokio::time::timeout(TOKEN_TIMEOUT, send_form(tls, &ep, body))
        .await
        .map_err(|_| ObserveError::Timeout(format!("token endpoint {url}")))??;
    token_response(url, status, &bytes, client_secret)
}

/// Connects to the endpoint (over TLS for https) and POSTs the form; the status and body.
async fn send_form(
    tls: &Arc<rustls::ClientConfig>,
    ep: &Endpoint,
    body: String,
) -> Result<(u16, Bytes), ObserveError> {
    let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| ObserveError::Connect {
            server: format!("token endpoint {}:{}", ep.host, ep.port),
            source: e,
        })?;
    if !ep.https {
        return post(tcp, ep, body).await;
    }
    let name = match ep.host.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(ep.host.clone())
            .map_err(|e| ObserveError::Config(format!("token endpoint host {:?}: {e}", ep.host)))?,
    };
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| ObserveError::Tls {
            server: format!("token endpoint {}:{}", ep.host, ep.port),
            detail: e.to_string(),
        })?;
    post(stream, ep, body).await
}

/// Reads a token endpoint's answer: the bearer token and its lifetime, or why not (with the
/// client secret scrubbed from anything the endpoint echoed).
fn token_response(
    url: &str,
    status: u16,
    bytes: &[u8],
    client_secret: &Secret,
) -> Result<(Secret, Duration), ObserveError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    if !(200..300).contains(&status) {
        let detail = match &json {
            Some(v) => {
                let e = v.get("error").and_then(|x| x.as_str()).unwrap_or("");
                let d = v
                    .get("error_description")
                    .and_then(|x| x.as_str())
                    .unwrap_or("");
                format!("{e}: {d}")
            }
            // Not JSON (an HTML error page, a proxy's text): its wording is unknown, and it may
            // echo the request in an encoding `scrub` does not know, so only its size is told.
            None => format!("a {}-byte body that is not JSON", bytes.len()),
        };
        return Err(ObserveError::Token(format!(
            "token endpoint {url} answered HTTP {status}: {}",
            scrub(&detail, client_secret)
        )));
    }
    let v = json.ok_or_else(|| {
        ObserveError::Token(format!("token endpoint {url} did not answer with JSON"))
    })?;
    let token = v
        .get("access_token")
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ObserveError::Token(format!(
                "token endpoint {url} answered without access_token"
            ))
        })?;
    if let Some(tt) = v.get("token_type").and_then(|x| x.as_str()) {
        if !tt.eq_ignore_ascii_case("bearer") {
            return Err(ObserveError::Token(format!(
                "token endpoint {url} gave a {tt:?} token, not a bearer token"
            )));
        }
    }
    // Microsoft sends a number; some servers send a string. Without it, assume an hour.
    let secs = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3600),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(3600),
        _ => 3600,
    };
    Ok((Secret(token.to_string()), Duration::from_secs(secs)))
}

/// Sends one HTTP/1.1 POST over `io` with hyper and returns the status and body.
async fn post<T>(io: T, ep: &Endpoint, body: String) -> Result<(u16, Bytes), ObserveError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = |what: &str| format!("token endpoint {}:{}: {what}", ep.host, ep.port);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| ObserveError::Token(ctx(&format!("HTTP handshake failed: {e}"))))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host_header = if (ep.https && ep.port == 443) || (!ep.https && ep.port == 80) {
        ep.host.clone()
    } else {
        format!("{}:{}", ep.host, ep.port)
    };
    let req = hyper::Request::post(ep.path.as_str())
        .header(HOST, host_header)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .header(
            USER_AGENT,
            concat!("mailharness/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ObserveError::Token(ctx(&format!("cannot build the request: {e}"))))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ObserveError::Token(ctx(&format!("request failed: {e}"))))?;
    let status = resp.status().as_u16();
    let bytes = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ObserveError::Token(ctx(&format!("cannot read the response: {e}"))))?
        .to_bytes();
    driver.abort();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_refuse_plain_remote() {
        let e = Endpoint::parse("https://login.example/t/oauth2/v2.0/token").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.https),
            ("login.example", 443, true)
        );
        let e = Endpoint::parse("http://127.0.0.1:8080/token").unwrap();
        assert_eq!((e.port, e.path.as_str()), (8080, "/token"));
        assert!(Endpoint::parse("http://login.example/token").is_err());
        assert!(Endpoint::parse("ftp://x/").is_err());
        assert!(Endpoint::parse("https://u:p@x/").is_err());
        // The refusal must not print the credentials it refuses.
        let e = Endpoint::parse("http://cid:Url-Secret-55@127.0.0.1/token?k=Query-Secret")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must not carry credentials"), "{e}");
        assert!(!e.contains("Url-Secret-55") && !e.contains("cid:"), "{e}");
        assert!(e.contains("<redacted>@127.0.0.1/token?<redacted>"), "{e}");
        let e = Endpoint::parse("http://[::1]:9/t").unwrap();
        assert_eq!(e.host, "::1");
    }

    #[test]
    fn scrub_removes_raw_and_encoded_secret() {
        let s = Secret::new("a b+c/d=");
        let out = scrub("bad secret a b+c/d= or a+b%2Bc%2Fd%3D", &s);
        assert!(!out.contains("a b+c/d="));
        assert!(!out.contains("a+b%2Bc%2Fd%3D"));
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }

    fn oauth(text: &str) -> OAuthSettings {
        toml::from_str(text).expect("[imap.oauth] settings")
    }

    fn config_error(text: &str) -> String {
        match TokenSource::from_settings(&oauth(text)) {
            Err(ObserveError::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn client_credentials_default_to_microsofts_endpoint_and_scope() {
        let s = TokenSource::from_settings(&oauth(
            "client_id = \"app\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_secret_env = \"S\"",
        ))
        .expect("a source");
        assert_eq!(
            s,
            TokenSource::ClientCredentials {
                endpoint:
                    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
                        .into(),
                client_id: "app".into(),
                secret: SecretSource::Env("S".into()),
                scope: DEFAULT_SCOPE.into(),
            }
        );
        let s = TokenSource::from_settings(&oauth(
            "client_id = \"app\"\ntoken_endpoint = \"http://127.0.0.1:9/t\"\nclient_secret_file = \"/s\"\nscope = \"x\"",
        ))
        .expect("a source");
        assert!(
            matches!(s, TokenSource::ClientCredentials { ref endpoint, ref scope, .. } if endpoint == "http://127.0.0.1:9/t" && scope == "x")
        );
    }

    #[test]
    fn token_sources_are_refused_with_the_reason() {
        assert_eq!(
            TokenSource::from_settings(&oauth("token_command = [\"az\", \"token\"]")).expect("ok"),
            TokenSource::Command(vec!["az".into(), "token".into()])
        );
        assert!(config_error("token_env = \"T\"\ntoken_file = \"f\"").ends_with("it names 2"));
        assert_eq!(
            config_error("token_command = []"),
            "[imap.oauth] token_command is empty"
        );
        assert_eq!(
            config_error("client_id = \"a\"\ntenant_id = \"t\"\nclient_secret_env = \"S\"\nclient_secret_file = \"f\""),
            "[imap.oauth] client credentials need exactly one of client_secret_env or client_secret_file"
        );
        assert_eq!(
            config_error("client_id = \"a\"\ntenant_id = \"a/b\"\nclient_secret_env = \"S\""),
            "[imap.oauth] tenant_id \"a/b\" is not a GUID or domain name"
        );
        assert_eq!(
            config_error("client_id = \"a\"\nclient_secret_env = \"S\""),
            "[imap.oauth] client credentials need tenant_id or token_endpoint"
        );
        assert!(config_error("client_id = \"a\"\ntoken_endpoint = \"http://login.example/t\"\nclient_secret_env = \"S\"").contains("loopback"));
    }

    #[test]
    fn token_responses_give_the_bearer_token_and_its_lifetime() {
        let s = Secret::new("s3kr1t");
        let ok = |body: &str| token_response("u", 200, body.as_bytes(), &s);
        let (t, life) = ok(r#"{"access_token":"abc","token_type":"Bearer","expires_in":"120"}"#)
            .expect("a token");
        assert_eq!((t.expose(), life), ("abc", Duration::from_secs(120)));
        let (_, life) = ok(r#"{"access_token":"abc"}"#).expect("a token");
        assert_eq!(life, Duration::from_secs(3600));
        let err = |r: Result<(Secret, Duration), ObserveError>| r.expect_err("refused").to_string();
        assert!(err(ok(r#"{"access_token":"abc","token_type":"mac"}"#))
            .contains("gave a \"mac\" token, not a bearer token"));
        assert!(err(ok(r#"{"token_type":"Bearer"}"#)).contains("answered without access_token"));
        assert!(err(ok("not json")).contains("did not answer with JSON"));
        let e = err(token_response(
            "u",
            401,
            br#"{"error":"invalid_client","error_description":"secret s3kr1t is wrong"}"#,
            &s,
        ));
        assert!(e.starts_with("cannot get an XOAUTH2 token: token endpoint u answered HTTP 401: invalid_client: secret [redacted] is wrong"), "{e}");
        assert!(!e.contains("s3kr1t"), "{e}");
        let e = err(token_response("u", 502, b"<html>s3kr1t</html>", &s));
        assert!(
            e.ends_with("answered HTTP 502: a 19-byte body that is not JSON"),
            "{e}"
        );
    }
}
