//! The table of documented routes (methods, and the scopes an API key needs), read from
//! the OpenAPI document, and which requests a signed storage URL authorises: what the
//! auth gate, the connection guards and the fallback all consult.

pub use web_kit::routes::RouteTable;

/// The gateway's route table: the OpenAPI document's operations (scopes under the
/// `api_key` scheme, narrowed by a `namespace` or `collection`), plus the documents and
/// metrics served outside it, and
/// the console's files.
pub fn route_table(doc: &utoipa::openapi::OpenApi) -> RouteTable {
    RouteTable::new(
        doc,
        "api_key",
        &[
            "/openapi.json",
            "/metrics",
            "/docs",
            "/docs/",
            "/docs/{_:.*}",
            "/console",
            "/console/{_:.*}",
        ],
        &["namespace", "collection"],
    )
    // Only an upload id of this shape is an upload's route; other paths under
    // `/{namespace}/uploads/` are objects' keys.
    .with_shapes(&[("upload_id", crate::http::blobs::uploads::UPLOAD_ID_ROUTE)])
}

/// A storage URL the gateway signed: it needs no key (its handler checks the signature
/// before reading any body). Only an object's GET, HEAD and PUT, and an upload part's
/// PUT, take them.
pub fn is_signed_storage_url(req: &actix_web::HttpRequest) -> bool {
    matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD | actix_web::http::Method::PUT
    ) && req
        .path()
        .strip_prefix("/api/v1/blobs/")
        .is_some_and(|rest| rest.contains('/'))
        && req.query_string().contains("X-EB-Signature=")
}

/// True for a request whose body is read before any API key is checked: a route the
/// OpenAPI document puts behind no key (licence-holder calls, SNS notifications, unknown
/// paths), except storage URLs the gateway signed (checked before their body is read,
/// and as large as uploads). The body timeout's whole-body deadline applies to these.
pub fn reads_body_unauthenticated(req: &actix_web::dev::ServiceRequest) -> bool {
    let Some(routes) = req.app_data::<actix_web::web::Data<RouteTable>>() else {
        return false;
    };
    routes.scopes(req.method(), req.path()).is_none() && !is_signed_storage_url(req.request())
}
