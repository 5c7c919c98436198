// The TCP client protocol end to end in one process: a TcpServer over real sockets on a real
// TextService + Scheduler + engine (the golden tiny dense model), driven by the blocking Client and
// by raw sockets for what a well-behaved client never sends (bad versions, bad keys, garbage frames,
// oversize frames, messages out of order).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "common/error.h"
#include "coordinator/scheduler.h"
#include "coordinator/tcp/client.h"
#include "coordinator/tcp/protocol.h"
#include "coordinator/tcp/server.h"
#include "tests/unit/coordinator/tcp/server_test_support.h"
#include "coordinator/text_service.h"
#include "engine/engine.h"
#include "model/tokenizer.h"
#include "proto/frame.h"

namespace shardlm::tcp {
namespace {

using namespace test_support;

TEST_F(TcpServerTest, HandshakeGenerateModelsHealth) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.welcome().protocol_major(), kProtocolMajor);
  EXPECT_EQ(c.welcome().protocol_minor(), kProtocolMinor);
  EXPECT_EQ(c.welcome().model(), "tiny");
  EXPECT_EQ(c.welcome().max_context(), kMaxContext);
  EXPECT_EQ(c.welcome().max_frame_bytes(), kDefaultMaxFrameBytes);
  EXPECT_EQ(server->connection_count(), 1u);

  const std::string prompt = "hello world";
  const Result a = run(c, prompt, greedy(12));
  EXPECT_EQ(a.finish.finish_reason(), client::FINISH_REASON_LENGTH);
  EXPECT_EQ(a.finish.usage().completion_tokens(), 12);
  EXPECT_EQ(a.finish.usage().prompt_tokens(), static_cast<int64_t>(tokenizer_->encode(prompt, true).size()));
  EXPECT_GT(a.deltas, 0);
  const client::Timings& t = a.finish.timings();
  EXPECT_GT(t.total_seconds(), 0.0);
  EXPECT_GE(t.total_seconds(), t.ttft_seconds());
  EXPECT_GE(t.ttft_seconds(), t.queue_seconds());
  EXPECT_GE(t.decode_seconds(), 0.0);
  // Greedy is deterministic.
  const Result b = run(c, prompt, greedy(12));
  EXPECT_EQ(a.content, b.content);

  const auto models = c.models();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name(), "tiny");
  EXPECT_EQ(models[0].max_context(), kMaxContext);
  const client::HealthStatus h = c.health();
  EXPECT_TRUE(h.serving());
  EXPECT_EQ(h.model(), "tiny");
  EXPECT_GT(h.steps(), 0);
  EXPECT_GT(h.uptime_seconds(), 0.0);
  EXPECT_GE(h.kv_usage(), 0.0);
  EXPECT_LE(h.kv_usage(), 1.0);
}

TEST_F(TcpServerTest, ChatAndLogprobs) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  std::vector<client::ChatMessage> messages(2);
  messages[0].set_role("system");
  messages[0].set_content("Be brief.");
  messages[1].set_role("user");
  messages[1].set_content("Hi there");
  RequestOptions o = greedy(6);
  o.ignore_eos = false;
  o.top_logprobs = 2;
  int logprobs = 0;
  const client::Finish f = c.chat(messages, o, [&](const client::Delta& d) {
    for (const auto& lp : d.logprobs()) {
      ++logprobs;
      EXPECT_LE(lp.logprob(), 0.0f);
      ASSERT_EQ(lp.top_size(), 2);
      EXPECT_GE(lp.top(0).logprob(), lp.top(1).logprob());
      EXPECT_GE(lp.top(0).logprob(), lp.logprob() - 1e-4f);  // greedy picks the best
    }
  });
  EXPECT_NE(f.finish_reason(), client::FINISH_REASON_CANCELLED);
  EXPECT_GE(f.usage().completion_tokens(), 1);
  EXPECT_LE(f.usage().completion_tokens(), 6);
  EXPECT_GE(logprobs, 1);
  TextRequest same;
  same.chat = true;
  same.messages = {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi there"}}};
  EXPECT_EQ(f.usage().prompt_tokens(), static_cast<int64_t>(service_->prompt_tokens(same).size()));
}

// Protocol 1.6: the prompt's log-probabilities once before any output, the echo of the prompt first
// in each choice, every delta naming its choice, each choice's finish reason.
TEST_F(TcpServerTest, ChoicesEchoAndPromptLogprobs) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  const std::string prompt = "hello world";
  const Result alone = run(c, prompt, greedy(6));
  RequestOptions o = greedy(6);
  o.n = 3;
  o.echo = true;
  o.prompt_logprobs = 2;
  std::vector<client::Delta> deltas;
  const client::Finish finish = c.generate(prompt, o, [&](const client::Delta& d) { deltas.push_back(d); });
  ASSERT_FALSE(deltas.empty());
  // First the prompt's log-probabilities, alone and once: one entry per prompt token.
  const size_t prompt_tokens = tokenizer_->encode(prompt, true).size();
  ASSERT_EQ(static_cast<size_t>(deltas[0].prompt_logprobs_size()), prompt_tokens);
  EXPECT_TRUE(deltas[0].content().empty());
  EXPECT_FALSE(deltas[0].prompt_logprobs(0).has_logprob());
  for (int i = 1; i < deltas[0].prompt_logprobs_size(); ++i) {
    const client::PromptLogprob& p = deltas[0].prompt_logprobs(i);
    EXPECT_TRUE(p.has_logprob());
    EXPECT_LE(p.logprob(), 0.0f);
    EXPECT_GE(p.rank(), 1);
    ASSERT_EQ(p.top_size(), 2);
    EXPECT_GE(p.top(0).logprob(), p.top(1).logprob());
    EXPECT_GE(p.top(0).logprob(), p.logprob());
  }
  std::map<int32_t, std::string> text;
  std::map<int32_t, client::FinishReason> ended_early;
  for (size_t i = 1; i < deltas.size(); ++i) {
    EXPECT_EQ(deltas[i].prompt_logprobs_size(), 0) << "the prompt's log-probabilities came twice";
    const int32_t index = deltas[i].index();
    ASSERT_GE(index, 0);
    ASSERT_LT(index, 3);
    if (text.count(index) == 0) EXPECT_EQ(deltas[i].content(), prompt) << "choice " << index << " did not begin with the echo";
    text[index] += deltas[i].content();
    if (deltas[i].choice_finish_reason() != client::FINISH_REASON_UNSPECIFIED) {
      ended_early[index] = deltas[i].choice_finish_reason();
    }
  }
  // Greedy: each choice is the request alone, after the prompt.
  ASSERT_EQ(text.size(), 3u);
  for (const auto& [index, t] : text) EXPECT_EQ(t, prompt + alone.content) << "choice " << index;
  EXPECT_LE(ended_early.size(), 2u);  // the last choice's end is the Finish
  for (const auto& [index, reason] : ended_early) EXPECT_EQ(reason, client::FINISH_REASON_LENGTH) << index;
  EXPECT_EQ(finish.finish_reason(), client::FINISH_REASON_LENGTH);
  ASSERT_EQ(finish.choice_finish_reasons_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(finish.choice_finish_reasons(i), client::FINISH_REASON_LENGTH);
  EXPECT_EQ(finish.usage().completion_tokens(), 18);
  EXPECT_EQ(finish.usage().prompt_tokens(), static_cast<int64_t>(prompt_tokens));

  // Refused: echo with chat, n out of range; the connection stays usable.
  std::vector<client::ChatMessage> messages(1);
  messages[0].set_role("user");
  messages[0].set_content("hi");
  EXPECT_THROW(c.chat(messages, o, nullptr), ServerError);
  RequestOptions too_many = greedy(2);
  too_many.n = 129;
  try {
    run(c, prompt, too_many);
    ADD_FAILURE() << "n = 129 was accepted";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.code(), client::ERROR_INVALID_REQUEST);
    EXPECT_NE(e.message().find("n must be in [1, 128]"), std::string::npos) << e.message();
  }
  EXPECT_EQ(run(c, prompt, greedy(6)).content, alone.content);
}

TEST_F(TcpServerTest, TwoConcurrentRequestsOnOneConnection) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  const std::string p1 = "the quick brown fox";
  const std::string p2 = "hello world hello world hello";
  const Result alone1 = run(c, p1, greedy(24));
  const Result alone2 = run(c, p2, greedy(24));

  client::GenerateRequest r1 = Client::make_request(greedy(24));
  r1.set_prompt(p1);
  client::GenerateRequest r2 = Client::make_request(greedy(24));
  r2.set_prompt(p2);
  const uint64_t id1 = c.send_generate(r1);
  const uint64_t id2 = c.send_generate(r2);
  ASSERT_NE(id1, id2);
  std::map<uint64_t, std::string> text;
  std::map<uint64_t, client::Finish> finish;
  std::map<uint64_t, int> deltas_before_other_finished;
  while (finish.size() < 2) {
    const auto m = c.receive(60);
    ASSERT_TRUE(m.has_value());
    const uint64_t id = m->request_id();
    ASSERT_TRUE(id == id1 || id == id2) << id;
    ASSERT_FALSE(m->has_error()) << m->error().message();
    if (m->has_delta()) {
      ASSERT_EQ(finish.count(id), 0u) << "delta after finish";
      text[id] += m->delta().content();
      if (finish.empty()) ++deltas_before_other_finished[id];
    } else {
      ASSERT_TRUE(m->has_finish());
      finish[id] = m->finish();
    }
  }
  // Both ran at the same time: each streamed before the other one finished.
  EXPECT_GT(deltas_before_other_finished[id1], 0);
  EXPECT_GT(deltas_before_other_finished[id2], 0);
  EXPECT_EQ(finish[id1].usage().completion_tokens(), 24);
  EXPECT_EQ(finish[id2].usage().completion_tokens(), 24);
  // Batched together, each gives the same text as alone.
  EXPECT_EQ(text[id1], alone1.content);
  EXPECT_EQ(text[id2], alone2.content);
}

TEST_F(TcpServerTest, ManyConnectionsAtOnce) {
  auto server = start_server();
  const int n = 6;
  std::vector<Result> results(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        Client c;
        c.connect("127.0.0.1", server->port());
        results[i] = run(c, "count " + std::to_string(i % 2), greedy(10));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(errors[i], "") << i;
    EXPECT_EQ(results[i].finish.usage().completion_tokens(), 10) << i;
    EXPECT_EQ(results[i].content, results[i % 2].content) << i;
  }
}

TEST_F(TcpServerTest, CancelEndsTheRequest) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  client::GenerateRequest r = Client::make_request(greedy(240));
  r.set_prompt("a long story");
  const uint64_t id = c.send_generate(r);
  std::optional<client::Finish> finish;
  bool cancelled = false;
  while (!finish) {
    const auto m = c.receive(60);
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ(m->request_id(), id);
    ASSERT_FALSE(m->has_error()) << m->error().message();
    if (m->has_delta() && !cancelled) {
      c.send_cancel(id);
      cancelled = true;
    }
    if (m->has_finish()) finish = m->finish();
  }
  EXPECT_EQ(finish->finish_reason(), client::FINISH_REASON_CANCELLED);
  EXPECT_LT(finish->usage().completion_tokens(), 240);
  // Cancelling an id that has ended (or never existed) is ignored; the connection keeps working.
  c.send_cancel(id);
  c.send_cancel(9999);
  EXPECT_TRUE(c.health().serving());
  EXPECT_EQ(run(c, "again", greedy(3)).finish.usage().completion_tokens(), 3);
}

TEST_F(TcpServerTest, InterruptFlagCancels) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  std::atomic<bool> interrupt{false};
  c.set_interrupt(&interrupt);
  int deltas = 0;
  const client::Finish f = c.generate("interrupt me", greedy(240), [&](const client::Delta&) {
    ++deltas;
    interrupt = true;
  });
  EXPECT_EQ(f.finish_reason(), client::FINISH_REASON_CANCELLED);
  EXPECT_GE(deltas, 1);
}

TEST_F(TcpServerTest, RequestErrorsKeepTheConnection) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  auto expect_error = [&](const client::GenerateRequest& r, client::ErrorCode code, const std::string& words) {
    try {
      c.run(r, {});
      ADD_FAILURE() << "accepted: " << r.ShortDebugString();
    } catch (const ServerError& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(e.message().find(words), std::string::npos) << e.what();
    }
    EXPECT_TRUE(c.connected());
  };
  client::GenerateRequest r = Client::make_request(greedy(4));
  r.set_prompt("x");
  r.mutable_sampling()->set_temperature(-1);
  expect_error(r, client::ERROR_INVALID_REQUEST, "temperature");
  r = Client::make_request(greedy(4));
  r.set_prompt("x");
  r.mutable_sampling()->set_top_p(0);
  expect_error(r, client::ERROR_INVALID_REQUEST, "top_p");
  r = Client::make_request(greedy(4));
  r.set_prompt("x");
  r.set_max_tokens(0);
  expect_error(r, client::ERROR_INVALID_REQUEST, "max_tokens");
  r = Client::make_request(greedy(4));
  expect_error(r, client::ERROR_INVALID_REQUEST, "neither a prompt nor chat");
  r = Client::make_request(greedy(4));
  r.set_prompt("x");
  r.set_model("gpt-5");
  expect_error(r, client::ERROR_NOT_FOUND, "gpt-5");
  r = Client::make_request(greedy(4));
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += " hello";
  r.set_prompt(long_prompt);
  expect_error(r, client::ERROR_CONTEXT_LENGTH, "context");
  r = Client::make_request(greedy(4));
  r.mutable_chat()->add_messages()->set_role("user");
  r.mutable_chat()->set_tools_json("{not json");
  expect_error(r, client::ERROR_INVALID_REQUEST, "tools_json");
  r = Client::make_request(greedy(4));
  r.mutable_chat()->add_messages()->set_role("wizard");
  r.mutable_chat()->mutable_messages(0)->set_content("hi");
  expect_error(r, client::ERROR_INVALID_REQUEST, "wizard");
  r = Client::make_request(greedy(4));
  r.set_prompt("x");
  r.set_top_logprobs(21);
  expect_error(r, client::ERROR_INVALID_REQUEST, "top_logprobs");
  // The model's own name is accepted.
  r = Client::make_request(greedy(2));
  r.set_prompt("x");
  r.set_model("tiny");
  EXPECT_EQ(c.run(r, {}).usage().completion_tokens(), 2);
}

TEST_F(TcpServerTest, VersionMismatchIsRefused) {
  auto server = start_server();
  RawConnection raw(server->port());
  raw.send_hello(kProtocolMajor + 1, 3);
  const std::string text = raw.expect_closed_with(client::ERROR_VERSION_MISMATCH);
  EXPECT_NE(text.find(fmt::format("{}.3", kProtocolMajor + 1)), std::string::npos) << text;
  EXPECT_NE(text.find(fmt::format("{}.{}", kProtocolMajor, kProtocolMinor)), std::string::npos) << text;
  // Another minor version of the same major is fine.
  RawConnection ok(server->port());
  ok.send_hello(kProtocolMajor, kProtocolMinor + 5);
  const auto m = ok.read();
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->has_welcome());
}

TEST_F(TcpServerTest, ApiKeys) {
  TcpServerOptions o;
  o.api_keys = {"key-one", "key-two"};
  auto server = start_server(o);
  {
    Client c;
    c.connect("127.0.0.1", server->port(), "key-two");
    EXPECT_EQ(run(c, "hi", greedy(2)).finish.usage().completion_tokens(), 2);
  }
  for (const std::string key : {"key-three", "key-on", ""}) {
    Client c;
    try {
      c.connect("127.0.0.1", server->port(), key);
      ADD_FAILURE() << "key '" << key << "' accepted";
    } catch (const ServerError& e) {
      EXPECT_EQ(e.code(), client::ERROR_UNAUTHORIZED) << e.what();
      EXPECT_NE(std::string(e.what()).find(key.empty() ? "requires an API key" : "not valid"), std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(c.connected());
  }
  RawConnection raw(server->port());
  raw.send_hello(kProtocolMajor, kProtocolMinor, "wrong");
  raw.expect_closed_with(client::ERROR_UNAUTHORIZED);
}

TEST_F(TcpServerTest, MalformedFrameClosesOnlyItsConnection) {
  auto server = start_server();
  Client good;
  good.connect("127.0.0.1", server->port());
  // A request in flight on the good connection while the others break.
  client::GenerateRequest r = Client::make_request(greedy(40));
  r.set_prompt("keep going");
  const uint64_t id = good.send_generate(r);

  {  // connections that break the protocol, each closed on its own
    RawConnection bad(server->port());
    bad.handshake();
    std::string garbage(4, '\0');
    write_frame_length(6, garbage.data());
    garbage += std::string("\xff\xff\xff\xff\xff\xff", 6);
    bad.write(garbage);
    const std::string text = bad.expect_closed_with(client::ERROR_MALFORMED);
    EXPECT_NE(text.find("not a valid ClientMessage"), std::string::npos) << text;

    RawConnection before_hello(server->port());
    before_hello.send(generate_message(1, "x", 2));
    EXPECT_NE(before_hello.expect_closed_with(client::ERROR_MALFORMED).find("expected a hello"), std::string::npos);

    RawConnection empty(server->port());
    empty.handshake();
    empty.write(std::string(4, '\0'));  // a frame with an empty ClientMessage
    EXPECT_NE(empty.expect_closed_with(client::ERROR_MALFORMED).find("empty ClientMessage"), std::string::npos);

    RawConnection twice(server->port());
    twice.handshake();
    twice.send_hello();
    EXPECT_NE(twice.expect_closed_with(client::ERROR_MALFORMED).find("twice"), std::string::npos);

    RawConnection zero_id(server->port());
    zero_id.handshake();
    zero_id.send(generate_message(0, "x", 2));
    EXPECT_NE(zero_id.expect_closed_with(client::ERROR_MALFORMED).find("non-zero request_id"), std::string::npos);

    RawConnection duplicate(server->port());
    duplicate.handshake();
    duplicate.write(encode_frame(generate_message(7, "x", 200)) + encode_frame(generate_message(7, "y", 2)));
    std::optional<client::ServerMessage> m;
    std::string closing;
    while ((m = duplicate.read()).has_value()) {
      if (m->request_id() == 0) {
        ASSERT_TRUE(m->has_error());
        EXPECT_EQ(m->error().code(), client::ERROR_MALFORMED);
        closing = m->error().message();
      }
    }
    EXPECT_NE(closing.find("request id 7 is already used"), std::string::npos) << closing;
  }

  // The good connection's request was not disturbed.
  std::string content;
  for (;;) {
    const auto g = good.receive(60);
    ASSERT_TRUE(g.has_value());
    ASSERT_EQ(g->request_id(), id);
    ASSERT_FALSE(g->has_error()) << g->error().message();
    if (g->has_delta()) content += g->delta().content();
    if (g->has_finish()) {
      EXPECT_EQ(g->finish().usage().completion_tokens(), 40);
      break;
    }
  }
  EXPECT_EQ(content, run(good, "keep going", greedy(40)).content);
  EXPECT_TRUE(good.health().serving());
  // The broken connections are gone once their peers closed; the good one stays.
  for (int i = 0; i < 250 && server->connection_count() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(server->connection_count(), 1u);
}

TEST_F(TcpServerTest, RandomBytesNeverBreakTheServer) {
  TcpServerOptions o;
  o.max_frame_bytes = 1024;
  auto server = start_server(o);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    RawConnection raw(server->port());
    if (trial % 2 == 0) raw.handshake();
    std::string bytes;
    const int frames = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < frames; ++f) {
      std::string payload(rng() % 40, '\0');
      for (char& ch : payload) ch = static_cast<char>(rng());
      std::string header(4, '\0');
      // Mostly honest lengths; sometimes a random one (short, long or oversize).
      write_frame_length(trial % 3 == 0 ? static_cast<uint32_t>(rng()) : static_cast<uint32_t>(payload.size()),
                         header.data());
      bytes += header + payload;
    }
    raw.write(bytes);
    raw.shutdown_write();
    // Whatever the bytes were, the server answers with frames and closes the connection.
    int received = 0;
    while (raw.read(30).has_value()) ASSERT_LT(++received, 100);
  }
  Client c;
  c.connect("127.0.0.1", server->port());
  EXPECT_EQ(run(c, "after the noise", greedy(3)).finish.usage().completion_tokens(), 3);
  for (int i = 0; i < 250 && server->connection_count() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(server->connection_count(), 1u);
}

TEST_F(TcpServerTest, OversizeFrameIsRefused) {
  TcpServerOptions o;
  o.max_frame_bytes = 4096;
  auto server = start_server(o);
  Client good;
  good.connect("127.0.0.1", server->port());
  EXPECT_EQ(good.welcome().max_frame_bytes(), 4096u);
  // The client checks the limit itself before sending.
  EXPECT_THROW(good.generate(std::string(5000, 'a'), greedy(2), {}), Error);
  EXPECT_TRUE(good.connected());

  RawConnection raw(server->port());
  raw.handshake();
  raw.send(generate_message(1, std::string(5000, 'a'), 2));
  const std::string text = raw.expect_closed_with(client::ERROR_FRAME_TOO_LARGE);
  EXPECT_NE(text.find("exceeds the limit of 4096 bytes"), std::string::npos) << text;

  RawConnection huge(server->port());
  huge.write("\x7f\xff\xff\xff");  // 2 GiB declared: refused at the header
  huge.expect_closed_with(client::ERROR_FRAME_TOO_LARGE);

  EXPECT_EQ(run(good, "still here", greedy(3)).finish.usage().completion_tokens(), 3);
}

// Before its Hello a client gets at most 64 KiB of frame (a Hello is under 1 KiB): 100 silent
// connections cannot make the server buffer 16 MiB each.
TEST_F(TcpServerTest, FramesBeforeTheHelloAreSmall) {
  auto server = start_server();
  RawConnection early(server->port());
  char header[4];
  write_frame_length(65537, header);
  early.write(std::string(header, 4));
  const std::string text = early.expect_closed_with(client::ERROR_FRAME_TOO_LARGE);
  EXPECT_NE(text.find("exceeds the limit of 65536 bytes before the Hello"), std::string::npos) << text;
  // After it, the full limit.
  RawConnection after(server->port());
  after.handshake();
  after.send(generate_message(1, long_prompt(100000), 2));
  std::optional<client::ServerMessage> m;
  while ((m = after.read()).has_value() && !m->has_finish() && !m->has_error()) {
  }
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->request_id(), 1u) << message_kind(*m);  // the request's own answer (here: too long a prompt)
}

// A client that stops reading while its request streams is closed once a write has waited
// write_timeout_ms (its request cancelled), instead of holding its connection and request.
TEST_F(TcpServerTest, AClientThatStopsReadingIsClosedAfterTheWriteTimeout) {
  TcpServerOptions o;
  o.write_timeout_ms = 500;
  auto server = start_server(o);
  RawConnection stalled(server->port(), 2048);
  stalled.handshake();
  for (uint64_t id = 1; id <= 120; ++id) {  // ~8 MB of output: the window and the socket buffer (4 MB) fill
    client::ClientMessage m = generate_message(id, "Once upon a time", static_cast<int>(kMaxContext - 16));
    m.mutable_generate()->set_top_logprobs(20);
    stalled.send(m);
  }
  for (int i = 0; i < 1500 && server->connection_count() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(server->connection_count(), 0u);
}

TEST_F(TcpServerTest, HandshakeTimeout) {
  TcpServerOptions o;
  o.handshake_timeout_ms = 200;
  auto server = start_server(o);
  RawConnection raw(server->port());
  const std::string text = raw.expect_closed_with(client::ERROR_MALFORMED);
  EXPECT_NE(text.find("no hello"), std::string::npos) << text;
}

TEST_F(TcpServerTest, AFrameBegunMustBeFinished) {
  TcpServerOptions o;
  o.frame_timeout_ms = 300;
  auto server = start_server(o);
  RawConnection idle(server->port());
  idle.handshake();
  RawConnection stalled(server->port());
  stalled.handshake();
  stalled.write(std::string("\x00\x00", 2));  // half a length prefix, then nothing
  const std::string text = stalled.expect_closed_with(client::ERROR_MALFORMED);
  EXPECT_NE(text.find("a frame was begun but not finished within 300 ms (2 bytes of it arrived)"), std::string::npos) << text;
  // A connection between frames is not a stalled frame: it is still served.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  client::ClientMessage health;
  health.set_request_id(7);
  health.mutable_health();
  idle.send(health);
  const auto m = idle.read(10);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->has_health()) << message_kind(*m);
  // Frames that each finish in time are served however long the run of them: the deadline restarts
  // with every frame (here 400 ms of frames, each done within 200 ms of its first byte).
  health.set_request_id(8);
  const std::string a = encode_frame(health);
  health.set_request_id(9);
  const std::string b = encode_frame(health);
  idle.write(a.substr(0, 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  idle.write(a.substr(3) + b.substr(0, 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  idle.write(b.substr(3));
  for (uint64_t id : {8u, 9u}) {
    const auto reply = idle.read(10);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->request_id(), id);
    EXPECT_TRUE(reply->has_health()) << message_kind(*reply);
  }
}

TEST_F(TcpServerTest, StopTellsClientsAndCancels) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  client::GenerateRequest r = Client::make_request(greedy(240));
  r.set_prompt("until the server stops");
  const uint64_t id = c.send_generate(r);
  const auto first = c.receive(60);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->request_id(), id);
  const auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { server->stop(); });
  std::optional<client::ServerMessage> m;
  bool unavailable = false;
  try {
    while ((m = c.receive(30)).has_value()) {
      if (m->request_id() == 0 && m->has_error()) {
        EXPECT_EQ(m->error().code(), client::ERROR_UNAVAILABLE);
        unavailable = true;
      }
    }
  } catch (const Error&) {
    // the connection ended
  }
  stopper.join();
  EXPECT_TRUE(unavailable);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(server->connection_count(), 0u);
  server->stop();  // idempotent
  EXPECT_THROW(Client().connect("127.0.0.1", server->port()), Error);
  // The cancelled request released its sequence.
  for (int i = 0; i < 100 && service_->stats().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(service_->stats().running, 0);
}

TEST_F(TcpServerTest, NotReadyRefusesNewRequests) {
  auto server = start_server();
  Client c;
  c.connect("127.0.0.1", server->port());
  client::GenerateRequest r = Client::make_request(greedy(30));
  r.set_prompt("runs on");
  const uint64_t running = c.send_generate(r);
  const auto first = c.receive_for(running, 60);  // it has started
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->has_delta());
  server->set_ready(false);
  EXPECT_FALSE(c.health().serving());
  try {
    c.generate("refused", greedy(2), {});
    ADD_FAILURE() << "a new request was accepted while not ready";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.code(), client::ERROR_UNAVAILABLE) << e.what();
  }
  // The request that was running goes on to its end.
  for (;;) {
    const auto m = c.receive_for(running, 60);
    ASSERT_TRUE(m.has_value());
    ASSERT_FALSE(m->has_error()) << m->error().message();
    if (m->has_finish()) {
      EXPECT_EQ(m->finish().usage().completion_tokens(), 30);
      break;
    }
  }
  server->set_ready(true);
  EXPECT_TRUE(c.health().serving());
  EXPECT_EQ(run(c, "accepted", greedy(2)).finish.usage().completion_tokens(), 2);
}

TEST_F(TcpServerTest, ListenErrorsNameTheAddress) {
  auto server = start_server();
  TcpServerOptions o;
  o.port = server->port();
  TcpServer second(*service_, o);
  try {
    second.start();
    ADD_FAILURE() << "bound a port in use";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("127.0.0.1:{}", server->port())), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shardlm::tcp
