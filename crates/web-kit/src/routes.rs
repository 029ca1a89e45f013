//! The table of documented routes, read from an OpenAPI document: the methods each path
//! takes (so a known path with the wrong method answers 405 with `Allow`), and the
//! scopes each operation's security names, which an auth gate and a fallback consult.

use actix_web::dev::ResourceDef;
use actix_web::http::Method;

/// Routes and their methods, read from the OpenAPI document, so that a known path with
/// the wrong method answers 405 (with `Allow`) rather than 404.
pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<Method>)>,
    /// Every operation on a path pattern (`{id}`), with the scopes its `api_key`
    /// security names (empty: public or authenticated otherwise, such as licence-holder
    /// calls).
    secured: Vec<(ResourceDef, Method, Vec<String>)>,
    /// The same for literal paths, looked up directly (they win over patterns).
    secured_literal: std::collections::HashMap<String, Vec<(Method, Vec<String>)>>,
    /// The path parameters that narrow a qualified scope, in order of preference.
    qualifiers: &'static [&'static str],
}

impl RouteTable {
    /// Builds the table from the document, plus `extra_gets` (GET routes served outside
    /// it, such as `/metrics`); `scheme` is the security scheme that names scopes (the
    /// API key's), and `qualifiers` the path parameters that narrow a scope.
    pub fn new(
        doc: &utoipa::openapi::OpenApi,
        scheme: &'static str,
        extra_gets: &[&str],
        qualifiers: &'static [&'static str],
    ) -> Self {
        let mut routes: Vec<(ResourceDef, Vec<Method>)> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        for path in extra_gets {
            routes.push((ResourceDef::new(*path), vec![Method::GET]));
        }
        let mut secured = Vec::new();
        let mut secured_literal = std::collections::HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let scopes: Vec<String> = serde_json::to_value(&op.security)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|req| req.get(scheme).and_then(|s| s.as_array()).cloned())
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
                if path.contains('{') {
                    secured.push((ResourceDef::new(path.as_str()), method, scopes));
                } else {
                    secured_literal
                        .entry(path.clone())
                        .or_insert_with(Vec::new)
                        .push((method, scopes));
                }
            }
        }
        Self {
            routes,
            secured,
            secured_literal,
            qualifiers,
        }
    }

    /// Gives the path parameters named in `shapes` the pattern beside their name (such as
    /// `("upload_id", "up_[0-9a-f]{32}")`), as the app's routes do: a path whose value has
    /// another shape is then not that route's (it falls to a broader one, such as an
    /// object key's), so it is not held to that route's scopes.
    pub fn with_shapes(mut self, shapes: &[(&str, &str)]) -> Self {
        let shaped = |def: &ResourceDef| -> ResourceDef {
            let Some(pattern) = def.pattern() else {
                return def.clone();
            };
            let mut out = pattern.to_owned();
            for (name, regex) in shapes {
                out = out.replace(&format!("{{{name}}}"), &format!("{{{name}:{regex}}}"));
            }
            if out == pattern {
                def.clone()
            } else {
                ResourceDef::new(out)
            }
        };
        for (def, _) in &mut self.routes {
            *def = shaped(def);
        }
        for (def, _, _) in &mut self.secured {
            *def = shaped(def);
        }
        self
    }

    /// The scopes an API key needs for `method` on `path`, when the operation is behind
    /// one (a literal route wins over a pattern that also matches).
    pub fn scopes(&self, method: &Method, path: &str) -> Option<&[String]> {
        let literal = self
            .secured_literal
            .get(path)
            .and_then(|ops| ops.iter().find(|(m, _)| m == method));
        let scopes = match literal {
            Some((_, scopes)) => scopes,
            None => {
                let (_, _, scopes) = self
                    .secured
                    .iter()
                    .find(|(def, m, _)| m == method && def.is_match(path))?;
                scopes
            }
        };
        (!scopes.is_empty()).then_some(scopes.as_slice())
    }

    /// The first of the qualifying parameters a pattern route names in `path` (the
    /// gateway's `namespace` is `web` in `/api/v1/blobs/web/a.txt`): what narrows a
    /// qualified scope.
    pub fn qualifier(&self, method: &Method, path: &str) -> Option<String> {
        if self.secured_literal.contains_key(path) {
            return None;
        }
        let (def, _, _) = self
            .secured
            .iter()
            .find(|(def, m, _)| m == method && def.is_match(path))?;
        let mut captured = actix_web::dev::Path::new(path);
        if !def.capture_match_info(&mut captured) {
            return None;
        }
        self.qualifiers
            .iter()
            .find_map(|name| captured.get(name))
            .map(str::to_owned)
    }

    /// The methods `path` accepts, if it is a known route.
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let matching: Vec<&(ResourceDef, Vec<Method>)> =
            self.routes.iter().filter(|(def, _)| def.is_match(path)).collect();
        // A literal route (`/licenses/validate`) speaks for its path, not a pattern that
        // also matches it (`/licenses/{id}`).
        let literal: Vec<&(ResourceDef, Vec<Method>)> = matching
            .iter()
            .copied()
            .filter(|(def, _)| !def.pattern().is_some_and(|p| p.contains('{')))
            .collect();
        let chosen = if literal.is_empty() { matching } else { literal };
        let mut methods: Vec<Method> = chosen.iter().flat_map(|(_, m)| m.iter().cloned()).collect();
        if methods.is_empty() {
            return None;
        }
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods.dedup();
        Some(methods)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use actix_web::http::Method;

    use super::RouteTable;

    #[test]
    fn shaped_parameters_leave_other_values_to_broader_routes() {
        let doc: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/b/{namespace}/uploads/{upload_id}": {
                    "get": {"responses": {}, "security": [{"api_key": ["w"]}]}
                }
            }
        }))
        .unwrap();
        let plain = RouteTable::new(&doc, "api_key", &[], &["namespace"]);
        assert_eq!(
            plain.scopes(&Method::GET, "/b/web/uploads/notes.txt"),
            Some(&["w".to_owned()][..])
        );
        let shaped =
            RouteTable::new(&doc, "api_key", &[], &["namespace"]).with_shapes(&[("upload_id", "up_[0-9a-f]{32}")]);
        assert_eq!(
            shaped.scopes(&Method::GET, "/b/web/uploads/up_0123456789abcdef0123456789abcdef"),
            Some(&["w".to_owned()][..])
        );
        assert_eq!(
            shaped
                .qualifier(&Method::GET, "/b/web/uploads/up_0123456789abcdef0123456789abcdef")
                .as_deref(),
            Some("web")
        );
        assert_eq!(shaped.scopes(&Method::GET, "/b/web/uploads/notes.txt"), None);
        assert_eq!(shaped.allowed("/b/web/uploads/notes.txt"), None);
        // Not 32 hex digits: an object key's path, not an upload's.
        assert_eq!(shaped.allowed("/b/web/uploads/up_0a"), None);
        assert_eq!(
            shaped.allowed("/b/web/uploads/up_0123456789abcdef0123456789abcdef"),
            Some(vec![Method::GET])
        );
    }
}
