//! Authentication over HTTP: reads `Authorization: Bearer <key>`, asks the `access`
//! crate who it is ([`Authenticator`]), and checks the scope an operation needs before
//! its body is read ([`gate`]). Keys, digests and scope rules live in `access`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use access::AccessService;
use actix_web::{FromRequest, HttpRequest, web};
use shared_db::DbPool;

pub use access::scopes::{SCOPES, grants};

use crate::error::ApiError;
use crate::ratelimit::HolderLimits;
use crate::routes::{RouteTable, is_signed_storage_url};
use crate::state::AppState;

/// Who is calling: the `access` principal (its `require` checks answer an `AccessError`,
/// which `?` turns into its HTTP answer), taken from the request.
#[derive(Debug, Clone)]
pub struct Principal(pub access::Principal);

impl std::ops::Deref for Principal {
    type Target = access::Principal;

    fn deref(&self) -> &access::Principal {
        &self.0
    }
}

/// What authenticating a request needs (app data for the gate and the extractor).
#[derive(Clone)]
pub struct Authenticator {
    keys: AccessService,
    pool: DbPool,
    limits: Arc<HolderLimits>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl Authenticator {
    /// The state's keys, pool, failure limits and trusted proxies.
    pub fn new(state: &AppState) -> Self {
        Self {
            keys: state.api_keys.clone(),
            pool: state.pool.clone(),
            limits: state.holder_limits.clone(),
            trusted_proxies: state.config.server.trusted_proxies.clone().into(),
        }
    }

    /// Authenticates the request's `Authorization: Bearer` key: 401 without a valid key,
    /// 429 while the caller's address is blocked for failing too often.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Principal, ApiError> {
        let address = crate::net::client_ip(req, &self.trusted_proxies);
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
        self.limits.auth_allowed(address)?;
        let result = self.keys.authenticate(&self.pool, key).await;
        if result.as_ref().is_err_and(access::AccessError::is_unauthenticated) {
            self.limits.auth_failed(address);
        }
        Ok(Principal(result?))
    }
}

/// Middleware: for every operation the OpenAPI document puts behind an API key, checks
/// the key and its scope before the request body is read, so a caller without the
/// right key always gets 401/403 (never a validation error about a body it may not
/// send). The principal is kept for the handler's extractor.
pub async fn gate<B: actix_web::body::MessageBody>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let routes = req.app_data::<web::Data<RouteTable>>().cloned();
    let auth = req.app_data::<web::Data<Authenticator>>().cloned();
    // Storage URLs the gateway signed need no key (the handler checks the signature).
    let signed_url = is_signed_storage_url(req.request());
    if let (Some(routes), Some(auth)) = (routes, auth)
        && !signed_url
        && let Some(family) = routes.scopes(req.method(), req.path())
    {
        // Answered here (not raised), so the request's log line and id still wrap it.
        let principal = match auth.authenticate(req.request()).await {
            Ok(p) => p,
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        };
        // Names the narrow scope (`blobs:write:web`) when the path says which one.
        if let Err(e) = principal.require_reach(family, || routes.qualifier(req.method(), req.path())) {
            return Ok(req.error_response(ApiError::from(e)).map_into_right_body());
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
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let auth = auth.ok_or_else(|| ApiError::internal("Authenticator missing"))?;
            auth.authenticate(&req).await
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::error::ApiError;

    #[test]
    fn the_refusal_names_every_scope_that_would_do() {
        let e = ApiError::from(access::scopes::insufficient(&["licenses:read", "licenses:admin"]));
        assert_eq!(
            e.problem().detail.unwrap(),
            "this API key lacks the `licenses:read` scope; a key with `licenses:read`, `licenses:admin` or `*` may make this call"
        );
    }
}
