#include <gtest/gtest.h>

#include "coordinator/http/api_router.h"
#include "http_test_support.h"

namespace shardlm::http {
namespace {

using nlohmann::json;
using testing::ScriptedBackend;

HttpRequestView req(std::string method, std::string target, std::string body = "", std::string auth = "") {
  return {std::move(method), std::move(target), std::move(auth), std::move(body), {}};
}

const std::string kChat = R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}]})";

TEST(ApiRouter, HealthReadyModels) {
  ScriptedBackend backend;
  ApiRouter router(backend, {});
  auto h = router.handle(req("GET", "/health"));
  ASSERT_TRUE(h.reply);
  EXPECT_EQ(h.reply->status, 200);
  EXPECT_EQ(json::parse(h.reply->body), (json{{"status", "ok"}}));
  EXPECT_EQ(router.handle(req("GET", "/ready")).reply->status, 503);
  router.set_ready(true);
  EXPECT_EQ(router.handle(req("GET", "/ready")).reply->status, 200);
  router.set_stopping();
  auto r = router.handle(req("GET", "/ready"));
  EXPECT_EQ(r.reply->status, 503);
  EXPECT_EQ(json::parse(r.reply->body)["status"], "stopping");

  auto m = router.handle(req("GET", "/v1/models"));
  ASSERT_TRUE(m.reply);
  EXPECT_EQ(m.reply->status, 200);
  EXPECT_EQ(json::parse(m.reply->body)["data"][0]["id"], "tiny");
  EXPECT_EQ(router.handle(req("GET", "/v1/models/tiny")).reply->status, 200);
  auto missing = router.handle(req("GET", "/v1/models/gpt-4"));
  EXPECT_EQ(missing.reply->status, 404);
  EXPECT_EQ(json::parse(missing.reply->body)["error"]["code"], "model_not_found");
}

TEST(ApiRouter, ModelIdsArePercentDecoded) {
  ScriptedBackend backend("google/gemma-4");
  ApiRouter router(backend, {});
  EXPECT_EQ(router.handle(req("GET", "/v1/models/google%2Fgemma-4")).reply->status, 200);
  EXPECT_EQ(router.handle(req("GET", "/v1/models/google/gemma-4")).reply->status, 200);
  EXPECT_EQ(router.handle(req("GET", "/v1/models/google%2")).reply->status, 404);
}

TEST(ApiRouter, UnknownRoutesAndMethods) {
  ScriptedBackend backend;
  ApiRouter router(backend, {});
  auto nf = router.handle(req("GET", "/nothing/here?x=1"));
  EXPECT_EQ(nf.reply->status, 404);
  json e = json::parse(nf.reply->body)["error"];
  EXPECT_EQ(e["message"], "Invalid URL (GET /nothing/here)");
  EXPECT_TRUE(e.contains("param"));
  EXPECT_EQ(router.handle(req("GET", "/v1/embeddings")).reply->status, 404);

  auto wrong = router.handle(req("GET", "/v1/chat/completions"));
  EXPECT_EQ(wrong.reply->status, 405);
  ASSERT_EQ(wrong.reply->headers.size(), 1u);
  EXPECT_EQ(wrong.reply->headers[0], (std::pair<std::string, std::string>{"Allow", "POST"}));
  EXPECT_EQ(router.handle(req("POST", "/health")).reply->status, 405);
  EXPECT_EQ(router.handle(req("DELETE", "/v1/models")).reply->status, 405);
  EXPECT_EQ(router.handle(req("PUT", "/v1/completions")).reply->status, 405);
}

TEST(ApiRouter, GenerationRequestsAreParsedAndChecked) {
  ScriptedBackend backend;
  ApiRouter router(backend, {});
  auto ok = router.handle(req("POST", "/v1/chat/completions", kChat));
  ASSERT_FALSE(ok.reply);
  ASSERT_TRUE(ok.generation);
  EXPECT_EQ(ok.generation->endpoint, Endpoint::kChat);
  // No seed given: a random one per request.
  auto ok2 = router.handle(req("POST", "/v1/chat/completions", kChat));
  EXPECT_NE(ok.generation->text.sampling.seed, ok2.generation->text.sampling.seed);
  auto seeded = router.handle(req("POST", "/v1/chat/completions?x", R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}],"seed":5})"));
  EXPECT_EQ(seeded.generation->text.sampling.seed, 5u);

  auto c = router.handle(req("POST", "/v1/completions", R"({"model":"tiny","prompt":"x"})"));
  ASSERT_TRUE(c.generation);
  EXPECT_EQ(c.generation->endpoint, Endpoint::kCompletions);

  auto other = router.handle(req("POST", "/v1/chat/completions", R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]})"));
  ASSERT_TRUE(other.reply);
  EXPECT_EQ(other.reply->status, 404);
  json e = json::parse(other.reply->body)["error"];
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_EQ(e["param"], "model");

  auto bad = router.handle(req("POST", "/v1/chat/completions", "{not json"));
  EXPECT_EQ(bad.reply->status, 400);
  EXPECT_EQ(json::parse(bad.reply->body)["error"]["type"], "invalid_request_error");
  auto field = router.handle(req("POST", "/v1/completions", R"({"model":"tiny","prompt":"x","temperature":"hot"})"));
  EXPECT_EQ(field.reply->status, 400);
  EXPECT_EQ(json::parse(field.reply->body)["error"]["param"], "temperature");
}

TEST(ApiRouter, ApiKeys) {
  ScriptedBackend backend;
  ApiRouter router(backend, {"secret-1", "", "secret-2"});
  auto none = router.handle(req("GET", "/v1/models"));
  EXPECT_EQ(none.reply->status, 401);
  EXPECT_EQ(json::parse(none.reply->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "Bearer wrong")).reply->status, 401);
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "Bearer ")).reply->status, 401);  // the empty key is not a key
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "secret-1")).reply->status, 401);
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "Basic secret-1")).reply->status, 401);
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "Bearer secret-1x")).reply->status, 401);
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "Bearer secret-1")).reply->status, 200);
  EXPECT_EQ(router.handle(req("GET", "/v1/models", "", "bearer secret-2")).reply->status, 200);
  // Unknown /v1 paths answer 401 before 404, like OpenAI; chat needs the key too.
  EXPECT_EQ(router.handle(req("GET", "/v1/nothing")).reply->status, 401);
  EXPECT_EQ(router.handle(req("POST", "/v1/chat/completions", kChat)).reply->status, 401);
  EXPECT_TRUE(router.handle(req("POST", "/v1/chat/completions", kChat, "Bearer secret-2")).generation);
  // Health, readiness and other open routes need no key.
  EXPECT_EQ(router.handle(req("GET", "/health")).reply->status, 200);
  EXPECT_EQ(router.handle(req("GET", "/ready")).reply->status, 503);
  EXPECT_EQ(router.handle(req("GET", "/metrics")).reply->status, 404);
}

TEST(ApiRouter, ExtraRoutes) {
  ScriptedBackend backend;
  ApiRouter router(backend, {"k"});
  std::string seen;
  router.add_route("/v1/batches", [&](const std::string& method, const std::string& target, const std::string& body) {
    seen = method + " " + target + " " + body;
    return std::pair<int, std::string>{201, R"({"id":"batch_1"})"};
  });
  router.add_route("/v1/batches/fail", [](const std::string&, const std::string&, const std::string&) -> std::pair<int, std::string> {
    throw RequestError(RequestErrorCode::kNotFound, "no such batch");
  });
  router.add_route("/metrics", [](const std::string&, const std::string&, const std::string&) {
    return std::pair<int, std::string>{200, "shardlm_up 1\n"};
  }, "text/plain; version=0.0.4");
  router.add_route("/crash", [](const std::string&, const std::string&, const std::string&) -> std::pair<int, std::string> {
    throw std::runtime_error("bug");
  });

  auto b = router.handle(req("POST", "/v1/batches/abc?limit=2", "{}", "Bearer k"));
  EXPECT_EQ(b.reply->status, 201);
  EXPECT_EQ(b.reply->content_type, "application/json");
  EXPECT_EQ(seen, "POST /v1/batches/abc?limit=2 {}");
  EXPECT_EQ(router.handle(req("GET", "/v1/batches")).reply->status, 401);
  auto f = router.handle(req("GET", "/v1/batches/fail", "", "Bearer k"));  // longest prefix wins
  EXPECT_EQ(f.reply->status, 404);
  EXPECT_EQ(json::parse(f.reply->body)["error"]["message"], "no such batch");
  auto m = router.handle(req("GET", "/metrics"));
  EXPECT_EQ(m.reply->status, 200);
  EXPECT_EQ(m.reply->content_type, "text/plain; version=0.0.4");
  EXPECT_EQ(m.reply->body, "shardlm_up 1\n");
  EXPECT_EQ(router.handle(req("GET", "/crash")).reply->status, 500);
  // Built-in paths come first.
  router.add_route("/health", [](const std::string&, const std::string&, const std::string&) {
    return std::pair<int, std::string>{418, "{}"};
  });
  EXPECT_EQ(router.handle(req("GET", "/health")).reply->status, 200);
}

}  // namespace
}  // namespace shardlm::http
