use std::collections::HashMap;

use actix_web::dev::ServerHandle;
use gateway::app::Application;
use gateway::config::Config;
use gateway::state::AppState;
use secrecy::ExposeSecret;
use shared_db::testing::TestDb;
use shared_db::{Backend, DatabaseUrl};

pub const SECRET: &str = "test-secret-key-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A key holding every scope.
    pub admin_key: String,
    pub state: AppState,
    /// Keeps the test database alive as long as the app.
    _db: Option<TestDb>,
    handle: ServerHandle,
    _data: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// A database URL as `DATABASE_URL` takes it.
pub fn url_of(db: &DatabaseUrl) -> String {
    match db.backend() {
        Backend::Sqlite => format!("sqlite://{}", db.expose_target()),
        Backend::Mysql => db.expose_target().to_owned(),
    }
}

impl TestApp {
    /// The app on a fresh SQLite database.
    pub async fn spawn() -> TestApp {
        let db = TestDb::sqlite().await;
        Self::with_vars(&[("DATABASE_URL", &url_of(&db.url))], Some(db)).await
    }

    /// The app on a fresh MariaDB database, or `None` outside CI when none answers.
    pub async fn spawn_mysql() -> Option<TestApp> {
        let db = TestDb::mysql().await?;
        Some(Self::with_vars(&[("DATABASE_URL", &url_of(&db.url))], Some(db)).await)
    }

    /// The app on every backend available here.
    pub async fn each() -> Vec<TestApp> {
        let mut apps = vec![Self::spawn().await];
        apps.extend(Self::spawn_mysql().await);
        apps
    }

    /// The app with extra configuration variables.
    pub async fn with_vars(vars: &[(&str, &str)], db: Option<TestDb>) -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let mut map: HashMap<String, String> = HashMap::from([
            ("APP_HOST".into(), "127.0.0.1".into()),
            ("APP_PORT".into(), "0".into()),
            ("SECRET_KEY".into(), SECRET.into()),
            ("HTTP_WORKERS".into(), "1".into()),
            ("DATA_DIR".into(), data.path().to_string_lossy().into_owned()),
            // Chosen explicitly, as MySQL requires (S3_BUCKET in the S3 tests wins).
            (
                "BLOB_DIR".into(),
                data.path().join("blobs").to_string_lossy().into_owned(),
            ),
        ]);
        for (k, v) in vars {
            map.insert((*k).into(), (*v).into());
        }
        let config = Config::from_lookup(|k| map.get(k).cloned()).expect("test config");
        let app = Application::build(config).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());

        let admin_key = match state.pool.get().await {
            Ok(mut conn) => state
                .api_keys
                .create(&mut conn, "test admin", &["*".into()], None, None)
                .await
                .expect("admin key")
                .secret
                .expose_secret()
                .to_owned(),
            Err(_) => String::new(), // the unavailable-database tests need no key
        };
        TestApp {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            admin_key,
            state,
            _db: db,
            handle,
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `method` on `path` with the admin key, for a test to add headers or a body to.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.as_key(&self.admin_key, method, path)
    }

    /// `method` on `path` with `key` as the bearer token.
    pub fn as_key(&self, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub fn backend(&self) -> Backend {
        self.state.pool.backend()
    }

    /// GETs `path` with the admin key and returns the JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        json_of(get(self, path).await).await
    }

    /// Creates a key with `scopes` through the API and returns (id, key).
    pub async fn create_key(&self, scopes: &[&str]) -> (String, String) {
        let body = serde_json::json!({ "name": "made by a test", "scopes": scopes });
        let res = post_json(self, "/api/v1/api-keys", &body).await;
        assert_eq!(res.status(), 201);
        let body: serde_json::Value = res.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    }
}

/// Sends a request built in a test, unwrapping the transport result: `app.admin(..).go().await`.
pub trait Go {
    fn go(self) -> impl std::future::Future<Output = reqwest::Response> + Send;

    /// Sends the request and returns the JSON body of the answer.
    fn go_json(self) -> impl std::future::Future<Output = serde_json::Value> + Send;
}

impl Go for reqwest::RequestBuilder {
    async fn go(self) -> reqwest::Response {
        self.send().await.unwrap()
    }

    async fn go_json(self) -> serde_json::Value {
        json_of(self.go().await).await
    }
}

/// The JSON body of a response.
pub async fn json_of(res: reqwest::Response) -> serde_json::Value {
    res.json().await.unwrap()
}

/// The `id` in the JSON body of a response.
pub async fn id_of(res: reqwest::Response) -> String {
    json_of(res).await["id"].as_str().unwrap().to_owned()
}

/// The string `field` of every item in a page (`{"items": [...]}`).
pub fn item_strs(page: &serde_json::Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

/// GET `path` with the admin key.
pub async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    send(app, reqwest::Method::GET, path).await
}

/// DELETE `path` with the admin key.
pub async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    send(app, reqwest::Method::DELETE, path).await
}

/// `method` on `path` with the admin key and no body.
pub async fn send(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::Response {
    app.admin(method, path).go().await
}

/// POST `path` with the admin key and `body` as JSON.
pub async fn post_json(app: &TestApp, path: &str, body: &impl serde::Serialize) -> reqwest::Response {
    send_json(app, reqwest::Method::POST, path, body).await
}

/// POST `path` with no key and `body` as JSON (the calls a licence holder or a webhook makes).
pub async fn post_anon(app: &TestApp, path: &str, body: &impl serde::Serialize) -> reqwest::Response {
    app.client.post(app.url(path)).json(body).send().await.unwrap()
}

/// `method` on `path` with the admin key and `body` as JSON.
pub async fn send_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &impl serde::Serialize,
) -> reqwest::Response {
    app.admin(method, path).json(body).go().await
}

/// `method` on `path` with `key` as the bearer token and `body` as JSON, each when given:
/// what the route-by-route credential checks send.
pub fn request_with(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
) -> reqwest::RequestBuilder {
    let mut req = app.client.request(method, app.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req
}

/// Asserts a problem response with `status` and `code`, returning the document.
pub async fn assert_problem(res: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("urn:event-bridge:problem:{code}"));
    assert!(body["title"].is_string());
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "the body quotes the X-Request-Id"
    );
    body
}
