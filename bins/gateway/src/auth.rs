//! API keys: generation, HMAC-SHA256 digests under `SECRET_KEY`, scopes, and the
//! [`Principal`] extractor that authenticates `Authorization: Bearer <key>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use shared_db::api_keys::{self, ApiKeyRow};
use shared_db::{DbConn, DbError, DbPool, events};

use crate::error::ApiError;
use crate::scopes::{QUALIFIED, reaches};
pub use crate::scopes::{SCOPES, covers, grants, insufficient, sufficient, validate_scope};
use crate::state::AppState;

/// Keys start with this, so scanners and people can recognise them.
pub const KEY_PREFIX: &str = "eb_";

/// Makes and checks API keys.
#[derive(Clone)]
pub struct ApiKeys {
    key: Arc<hmac::Key>,
    previous: Arc<Vec<hmac::Key>>,
    /// The storage namespaces `blobs:*:<namespace>` scopes may name (`None`: unchecked).
    namespaces: Option<Arc<Vec<String>>>,
}

/// A new key: shown once, then only its digest exists.
pub struct IssuedKey {
    /// The stored row.
    pub row: ApiKeyRow,
    /// The key itself.
    pub secret: SecretString,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The API key's id.
    pub key_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<NaiveDateTime>,
}

impl Principal {
    /// `Ok` when this key may hand on or take away every one of `scopes` (see
    /// [`covers`]), else a 403 naming the first it may not.
    pub fn require_covers(&self, scopes: &[String]) -> Result<(), ApiError> {
        match scopes
            .iter()
            .find(|wanted| !self.scopes.iter().any(|held| covers(held, wanted)))
        {
            Some(lacking) => Err(insufficient(&[lacking])),
            None => Ok(()),
        }
    }

    /// `Ok` when the key holds `scope`, else a 403 naming it.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|held| grants(held, scope)) {
            Ok(())
        } else {
            Err(insufficient(&[scope]))
        }
    }

    /// `Ok` when the key holds any of `scopes`, else a 403 naming the first.
    pub fn require_any(&self, scopes: &[&str]) -> Result<(), ApiError> {
        match scopes.iter().find(|s| self.require(s).is_ok()) {
            Some(_) => Ok(()),
            None => Err(insufficient(scopes)),
        }
    }

    /// How this caller appears in audit events.
    pub fn actor(&self) -> String {
        format!("api_key:{}", self.key_id)
    }
}

impl ApiKeys {
    /// Keys digests with `secret`.
    pub fn new(secret: &SecretString) -> Self {
        Self {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes())),
            previous: Arc::new(Vec::new()),
            namespaces: None,
        }
    }

    /// Refuses keys with a storage scope for a namespace not among `names`
    /// (`blobs:read:nosuch`); `blobs:read:*` stays allowed.
    pub fn with_namespaces(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.namespaces = Some(Arc::new(names.into_iter().collect()));
        self
    }

    /// 422 naming `scope` when it narrows a storage scope to a namespace that is not
    /// configured. Data collections come into being on their first write, so
    /// `data:*:<collection>` scopes are not checked.
    fn check_namespace(&self, scope: &str) -> Result<(), ApiError> {
        let Some(known) = &self.namespaces else { return Ok(()) };
        let named = ["blobs:read:", "blobs:write:"]
            .iter()
            .find_map(|family| scope.strip_prefix(family))
            .filter(|q| *q != "*");
        match named {
            Some(ns) if !known.iter().any(|k| k == ns) => Err(ApiError::unprocessable(
                "invalid_scopes",
                format!(
                    "`{scope}`: no storage namespace is called `{ns}`; the namespaces are {}",
                    known.join(", ")
                ),
            )
            .for_field("scopes")),
            _ => Ok(()),
        }
    }

    /// Also accepts keys digested under earlier secrets (`SECRET_KEY_PREVIOUS`); each is
    /// re-digested under the current secret the first time it is used.
    pub fn with_previous(mut self, previous: &[SecretString]) -> Self {
        self.previous = Arc::new(
            previous
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose_secret().as_bytes()))
                .collect(),
        );
        self
    }

    fn digest(&self, key: &str) -> String {
        digest_with(&self.key, key)
    }

    /// The stored key `presented` names: under the current secret, else under an earlier
    /// one (then re-digested under the current secret, with an `api_key.rekeyed` event).
    async fn find(&self, conn: &mut DbConn, presented: &str) -> Result<Option<ApiKeyRow>, ApiError> {
        let current = self.digest(presented);
        if let Some(row) = api_keys::find_by_digest(conn, &current).await? {
            return Ok(self.matches(&self.key, presented, &row.digest).then_some(row));
        }
        for old in self.previous.iter() {
            let Some(mut row) = api_keys::find_by_digest(conn, &digest_with(old, presented)).await? else {
                continue;
            };
            if !self.matches(old, presented, &row.digest) {
                return Ok(None);
            }
            let id = row.id.clone();
            let digest = current.clone();
            conn.transaction::<_, DbError, _>(async move |c| {
                api_keys::set_digest(c, &id, &digest).await?;
                events::append(
                    c,
                    events::NewEvent {
                        event_type: "api_key.rekeyed",
                        actor: Some("system"),
                        subject: Some(&format!("api_key:{id}")),
                        data: serde_json::json!({}),
                    },
                )
                .await?;
                Ok(())
            })
            .await?;
            row.digest = current;
            return Ok(Some(row));
        }
        Ok(None)
    }

    /// Creates a key with `scopes`, recording an `api_key.created` event by `actor`.
    /// `granter` is the key that asks (none for the local CLI, which the operator runs):
    /// it may hand on only scopes it holds itself (see [`covers`]), else 403
    /// `insufficient_scope` naming the first scope it lacks.
    pub async fn create(
        &self,
        conn: &mut DbConn,
        name: &str,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
        granter: Option<&Principal>,
    ) -> Result<IssuedKey, ApiError> {
        let actor = granter.map_or_else(|| "cli".to_owned(), Principal::actor);
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::unprocessable(
                "invalid_name",
                "the name must be 1 to 200 characters",
            ));
        }
        if scopes.is_empty() {
            return Err(ApiError::unprocessable("invalid_scopes", "give at least one scope"));
        }
        for scope in scopes {
            validate_scope(scope).map_err(|m| ApiError::unprocessable("invalid_scopes", m))?;
            self.check_namespace(scope)?;
        }
        if let Some(granter) = granter {
            granter.require_covers(scopes)?;
        }
        let now = shared_db::now();
        if expires_at.is_some_and(|t| t.naive_utc() <= now) {
            return Err(ApiError::unprocessable(
                "invalid_expiry",
                "expires_at must be in the future",
            ));
        }
        if let Some(limit) = granter.and_then(|g| g.expires_at)
            && expires_at.is_none_or(|t| t.naive_utc() > limit)
        {
            return Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "expiry_not_allowed",
                format!(
                    "this API key expires at {}Z; a key it creates must expire no later (set expires_at)",
                    limit.format("%Y-%m-%dT%H:%M:%S")
                ),
            ));
        }
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let secret = format!(
            "{KEY_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&random).to_ascii_lowercase()
        );
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let row = ApiKeyRow {
            id: shared_db::new_id(),
            name: name.to_owned(),
            prefix: secret.chars().take(KEY_PREFIX.len() + 6).collect(),
            digest: self.digest(&secret),
            scopes: scopes.join(" "),
            created_at: now,
            expires_at: expires_at.map(|t| t.naive_utc().trunc_subsecs(6)),
            last_used_at: None,
            revoked_at: None,
        };
        let stored = row.clone();
        conn.transaction::<_, DbError, _>(async move |c| {
            api_keys::insert(c, &stored).await?;
            events::append(
                c,
                events::NewEvent {
                    event_type: "api_key.created",
                    actor: Some(&actor),
                    subject: Some(&format!("api_key:{}", stored.id)),
                    data: serde_json::json!({ "name": stored.name, "scopes": scopes }),
                },
            )
            .await?;
            Ok(())
        })
        .await?;
        Ok(IssuedKey {
            row,
            secret: SecretString::from(secret),
        })
    }

    /// Revokes key `id`; 404 when there is no such key. Revoking twice is not an error.
    /// `revoker` is the key that asks (none for the local CLI): it may revoke only keys
    /// whose every scope it could have granted, else 403 `insufficient_scope`.
    pub async fn revoke(
        &self,
        conn: &mut DbConn,
        id: &str,
        revoker: Option<&Principal>,
    ) -> Result<ApiKeyRow, ApiError> {
        let id = id.to_owned();
        let actor = revoker.map_or_else(|| "cli".to_owned(), Principal::actor);
        if let Some(revoker) = revoker
            && let Some(target) = api_keys::get(conn, &id).await?
        {
            let scopes: Vec<String> = target.scopes.split_whitespace().map(str::to_owned).collect();
            revoker.require_covers(&scopes)?;
        }
        let row = conn
            .transaction::<_, DbError, _>(async move |c| {
                let Some(row) = api_keys::get(c, &id).await? else {
                    return Ok(None);
                };
                if api_keys::revoke(c, &id, shared_db::now()).await? {
                    events::append(
                        c,
                        events::NewEvent {
                            event_type: "api_key.revoked",
                            actor: Some(&actor),
                            subject: Some(&format!("api_key:{id}")),
                            data: serde_json::json!({ "name": row.name }),
                        },
                    )
                    .await?;
                }
                api_keys::get(c, &id).await
            })
            .await?;
        row.ok_or_else(|| ApiError::not_found("api_key_not_found", "no API key has that id"))
    }

    /// Finds the key a caller presented; 401 unless it exists, is not revoked and has not
    /// expired.
    pub async fn authenticate(&self, pool: &DbPool, presented: &str) -> Result<Principal, ApiError> {
        let mut conn = pool.get().await?;
        let Some(row) = self.find(&mut conn, presented).await? else {
            return Err(ApiError::unauthorized("invalid_api_key", "the API key is not valid"));
        };
        let now = shared_db::now();
        if row.revoked_at.is_some() {
            return Err(ApiError::unauthorized(
                "api_key_revoked",
                "the API key has been revoked",
            ));
        }
        if row.expires_at.is_some_and(|t| t <= now) {
            return Err(ApiError::unauthorized("api_key_expired", "the API key has expired"));
        }
        if row.last_used_at.is_none_or(|t| now - t > chrono::Duration::seconds(60)) {
            // Best effort: a failed touch must not fail the request.
            if let Err(e) = api_keys::touch(&mut conn, &row.id, now).await {
                tracing::debug!(error = %e, "could not record API key use");
            }
        }
        Ok(Principal {
            key_id: row.id,
            scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
            expires_at: row.expires_at,
        })
    }

    /// Constant-time check of `presented` against a stored hex digest made with `key`.
    fn matches(&self, key: &hmac::Key, presented: &str, stored_hex: &str) -> bool {
        data_encoding::HEXLOWER
            .decode(stored_hex.as_bytes())
            .is_ok_and(|tag| hmac::verify(key, presented.as_bytes(), &tag).is_ok())
    }
}

fn digest_with(key: &hmac::Key, presented: &str) -> String {
    data_encoding::HEXLOWER.encode(hmac::sign(key, presented.as_bytes()).as_ref())
}

/// True when the key's expiry has passed.
pub fn is_expired(row: &ApiKeyRow, now: NaiveDateTime) -> bool {
    row.expires_at.is_some_and(|t| t <= now)
}

/// Authenticates the request's `Authorization: Bearer` key: 401 without a valid key,
/// 429 while the caller's address is blocked for failing too often.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, ApiError> {
    let address = crate::net::client_ip(req, &state.config.server.trusted_proxies);
    let presented = match req.headers().get(actix_web::http::header::AUTHORIZATION) {
        None => {
            return Err(ApiError::unauthorized(
                "missing_credentials",
                "send an API key as `Authorization: Bearer <key>`",
            ));
        }
        Some(v) => v.to_str().map_err(|_| {
            ApiError::unauthorized("malformed_credentials", "the Authorization header is not valid text")
        })?,
    };
    let key = presented
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ApiError::unauthorized("malformed_credentials", "use `Authorization: Bearer <key>`"))?;
    state.holder_limits.auth_allowed(address)?;
    let result = state.api_keys.authenticate(&state.pool, key).await;
    if result
        .as_ref()
        .is_err_and(|e| actix_web::ResponseError::status_code(e) == actix_web::http::StatusCode::UNAUTHORIZED)
    {
        state.holder_limits.auth_failed(address);
    }
    result
}

/// Middleware: for every operation the OpenAPI document puts behind an API key, checks
/// the key and its scope before the request body is read, so a caller without the
/// right key always gets 401/403 (never a validation error about a body it may not
/// send). The principal is kept for the handler's extractor.
pub async fn gate<B: actix_web::body::MessageBody>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let routes = req.app_data::<web::Data<crate::http::RouteTable>>().cloned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // Storage URLs the gateway signed need no key (the handler checks the signature).
    let signed_url = crate::http::is_signed_storage_url(req.request());
    if let (Some(routes), Some(state)) = (routes, state)
        && !signed_url
        && let Some(family) = routes.scopes(req.method(), req.path())
    {
        // Answered here (not raised), so the request's log line and id still wrap it.
        let principal = match authenticate(&state, req.request()).await {
            Ok(p) => p,
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        };
        if !reaches(&principal.scopes, family) {
            // Name the narrow scope (`blobs:write:web`) when the path says which one.
            let qualifier = routes.qualifier(req.method(), req.path());
            let needed: Vec<String> = family
                .iter()
                .map(|f| match &qualifier {
                    Some(q) if QUALIFIED.contains(&f.as_str()) => format!("{f}:{q}"),
                    _ => f.clone(),
                })
                .collect();
            let e = insufficient(&needed);
            return Ok(req.error_response(e).map_into_right_body());
        }
        actix_web::HttpMessage::extensions_mut(&req).insert(principal);
    }
    Ok(next.call(req).await?.map_into_left_body())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        if let Some(p) = req.extensions().get::<Principal>().cloned() {
            return Box::pin(std::future::ready(Ok(p)));
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState missing"))?;
            authenticate(&state, &req).await
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn digests_depend_on_the_secret_and_verify_in_constant_time() {
        let a = ApiKeys::new(&SecretString::from("0123456789abcdef0123456789abcdef"));
        let b = ApiKeys::new(&SecretString::from("fedcba9876543210fedcba9876543210"));
        let d = a.digest("eb_key");
        assert_eq!(d.len(), 64);
        assert_ne!(d, b.digest("eb_key"));
        assert!(a.matches(&a.key, "eb_key", &d));
        assert!(!a.matches(&a.key, "eb_kez", &d));
        assert!(!b.matches(&b.key, "eb_key", &d));
        assert!(!a.matches(&a.key, "eb_key", "not hex"));
    }
}
