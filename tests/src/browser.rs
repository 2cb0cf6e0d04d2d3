//! A headless Chromium driven over the DevTools protocol, for the web
//! console's browser tests: navigate, read the page, fill a form,
//! screenshot. Debian's `chromium` (installed by `.ci/run`), or the binary
//! named by `CHROMIUM_BIN`.

use std::{path::Path, process::Stdio, time::Duration};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// What went wrong driving the browser.
#[derive(Debug)]
pub struct BrowserError(pub String);

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "browser: {}", self.0)
    }
}

impl std::error::Error for BrowserError {}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A running headless browser with one page open.
pub struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

fn failed(what: impl std::fmt::Display) -> BrowserError {
    BrowserError(what.to_string())
}

/// The Chromium binary: `CHROMIUM_BIN`, else `chromium` on the PATH.
pub fn chromium_bin() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".to_owned())
}

impl Browser {
    /// Starts Chromium headless with a fresh profile, a page `width` wide.
    pub async fn start(width: u32, height: u32) -> Result<Browser, BrowserError> {
        let profile = tempfile::tempdir().map_err(failed)?;
        let mut child = Command::new(chromium_bin())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("starting {}: {e}", chromium_bin())))?;
        let stderr = child.stderr.take().ok_or_else(|| failed("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| failed("chromium printed no DevTools address"))?;
        // Keep draining stderr so the browser never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(failed)?;
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_owned();
        let attached = browser
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        browser.session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        browser
            .command(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await?;
        browser.command("Page.enable", json!({})).await?;
        Ok(browser)
    }

    async fn call(
        &mut self,
        session: Option<String>,
        method: &str,
        params: Value,
    ) -> Result<Value, BrowserError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(failed)?;
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(frame) = self.socket.next().await {
                let Ok(Message::Text(text)) = frame else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if value["id"] == id {
                    return Some(value);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| failed(format!("{method}: no answer")))?;
        if let Some(error) = answer.get("error") {
            return Err(failed(format!("{method}: {error}")));
        }
        Ok(answer["result"].clone())
    }

    async fn command(&mut self, method: &str, params: Value) -> Result<Value, BrowserError> {
        let session = Some(self.session.clone());
        self.call(session, method, params).await
    }

    /// Runs `expression` in the page; its value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, BrowserError> {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(failed(format!("{expression}: {exception}")));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Waits until the page at a URL starting with `prefix` has loaded.
    async fn loaded(&mut self, prefix: &str) -> Result<(), BrowserError> {
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let state = self
                .eval("[document.readyState, location.href]")
                .await
                .unwrap_or_default();
            if state[0] == "complete" && state[1].as_str().is_some_and(|h| h.starts_with(prefix)) {
                return Ok(());
            }
            if std::time::Instant::now() > give_up {
                return Err(failed(format!("{prefix} did not load: {state}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&mut self, url: &str) -> Result<(), BrowserError> {
        self.command("Page.navigate", json!({"url": url})).await?;
        self.loaded(url.split('#').next().unwrap_or(url)).await
    }

    /// Sets the value of the field `selector`.
    pub async fn fill(&mut self, selector: &str, value: &str) -> Result<(), BrowserError> {
        let expression = format!(
            "document.querySelector({}).value = {}",
            json!(selector),
            json!(value)
        );
        self.eval(&expression).await.map(|_| ())
    }

    /// Clicks `selector` (a link or a submit button) and waits for the page
    /// it leads to, whose URL starts with `then`.
    pub async fn click(&mut self, selector: &str, then: &str) -> Result<(), BrowserError> {
        let expression = format!("document.querySelector({}).click()", json!(selector));
        self.eval(&expression).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.loaded(then).await
    }

    /// The page's visible text.
    pub async fn text(&mut self) -> Result<String, BrowserError> {
        Ok(self
            .eval("document.body.innerText")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Saves a PNG of what the window shows to `path`.
    pub async fn screenshot(&mut self, path: &Path) -> Result<(), BrowserError> {
        let shot = self
            .command("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = decode_base64(shot["data"].as_str().unwrap_or_default())
            .ok_or_else(|| failed("screenshot is not base64"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        std::fs::write(path, data).map_err(failed)
    }

    /// Ends the browser.
    pub async fn close(mut self) {
        let _ = self.call(None, "Browser.close", json!({})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let take = chunk.len().saturating_sub(1);
        for i in 0..take {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(super::decode_base64("YWJj").unwrap(), b"abc");
    }
}
