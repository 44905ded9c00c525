mod common;
use common::*;

#[tokio::test]
async fn mock_and_proxy_round_trip() {
    let mock = MockUpstream::always(Script::json(200, fixture("openai-chat.json"))).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let r = post(&proxy.chat_url("openai"), chat_body("gpt-4o-mini", false)).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["content"], "Hello! How can I help you today?");
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
}
