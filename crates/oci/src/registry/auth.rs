//! The token exchange: a bearer token per repository from the registry's
//! challenge (through oci-client's `auth`), briefly cached.
use super::error_chain;
use super::fetch::Fetcher;
use oci_client::{Reference, RegistryOperation};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bearer token (if any) and when it was obtained, per repository.
pub(super) type TokenCache =
    Arc<tokio::sync::Mutex<std::collections::HashMap<String, (Option<String>, Instant)>>>;

const TOKEN_TTL: Duration = Duration::from_secs(50);

impl Fetcher {
    pub(super) async fn token(
        &self,
        r: &Reference,
        fresh: bool,
    ) -> std::result::Result<Option<String>, String> {
        let key = r.repository().to_string();
        if !fresh {
            if let Some((t, at)) = self.tokens.lock().await.get(&key) {
                if at.elapsed() < TOKEN_TTL {
                    return Ok(t.clone());
                }
            }
        }
        let t = self
            .client
            .auth(r, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| format!("authentication: {}", error_chain(&e)))?;
        self.tokens
            .lock()
            .await
            .insert(key, (t.clone(), Instant::now()));
        Ok(t)
    }
}
