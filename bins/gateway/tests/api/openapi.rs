use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_and_matches_its_snapshot() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let served: serde_json::Value = res.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    let built = serde_json::to_value(gateway::app::openapi()).unwrap();
    assert_eq!(served, built, "the served document is the one the routes build");
    insta::assert_json_snapshot!("openapi", served);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_declares_its_problem_responses() {
    let doc = serde_json::to_value(gateway::app::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let secured = op.get("security").is_some();
            if secured {
                for status in ["401", "403"] {
                    let problem = &responses[status]["content"]["application/problem+json"];
                    assert!(problem.is_object(), "{method} {path} lacks a {status} problem response");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_is_served_at_docs() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/docs/");
    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Swagger UI"));
    let res = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("/openapi.json"));
}
