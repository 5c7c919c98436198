// The TCP server's preparation of generate requests (rendering, tokenizing, queueing) off its I/O
// thread: a long prompt holds up no other message or connection, a connection's requests are
// prepared one at a time, reading pauses while too much waits, and a cancel during preparation
// ends the request once it is queued.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/unit/coordinator/tcp/server_test_support.h"

namespace shardlm::tcp {
namespace {

using namespace test_support;

// Rendering and tokenizing a prompt runs off the I/O thread: a message sent after an 8 MB prompt
// (about half a second of tokenizing) is answered first; the long prompt is then refused (it
// exceeds the context).
TEST_F(TcpServerTest, ALongPromptHoldsUpNoOtherMessage) {
  auto server = start_server();
  const std::string prompt = long_prompt(8u << 20);
  RawConnection c(server->port());
  c.handshake();
  client::ClientMessage models;
  models.set_request_id(6);
  models.mutable_list_models();
  c.write(encode_frame(generate_message(5, prompt, 4)) + encode_frame(models));
  const auto sent = std::chrono::steady_clock::now();
  const auto first = c.read(120);
  const double first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->request_id(), 6u);
  EXPECT_TRUE(first->has_models()) << message_kind(*first);
  const auto second = c.read(120);
  const double second_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  // Answered while the prompt was tokenized, not once it was (then both would come together).
  EXPECT_LT(first_s, 0.5 * second_s) << "models after " << first_s << " s, the refusal after " << second_s << " s";
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->request_id(), 5u);
  ASSERT_TRUE(second->has_error()) << message_kind(*second);
  EXPECT_EQ(second->error().code(), client::ERROR_CONTEXT_LENGTH) << second->error().message();
  // Another connection is served meanwhile as well.
  Client other;
  other.connect("127.0.0.1", server->port());
  EXPECT_EQ(run(other, "hello", greedy(2)).finish.usage().completion_tokens(), 2);
}

// One connection's long prompts do not hold up another's short one: a connection's requests are
// prepared one at a time, the server's two prepare threads taking connections in turn. The server
// counts what it is preparing (a draining server waits for it).
TEST_F(TcpServerTest, ManyLongPromptsOfOneConnectionHoldUpNoOther) {
  auto server = start_server();
  const std::string prompt = long_prompt(8u << 20);
  RawConnection big(server->port());
  big.handshake();
  std::string frames;
  for (uint64_t id = 1; id <= 4; ++id) frames += encode_frame(generate_message(id, prompt, 4));
  big.write(frames);
  EXPECT_GE(server->preparing(), 1);
  Client other;
  other.connect("127.0.0.1", server->port());
  EXPECT_EQ(run(other, "hello", greedy(2)).finish.usage().completion_tokens(), 2);
  // Answered while the first long prompt was still being tokenized (each takes about half a second).
  EXPECT_TRUE(big.nothing_arrived());
  for (uint64_t id = 1; id <= 4; ++id) {
    const auto m = big.read(120);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->request_id(), id);  // in order
    ASSERT_TRUE(m->has_error()) << message_kind(*m);
    EXPECT_EQ(m->error().code(), client::ERROR_CONTEXT_LENGTH);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (server->preparing() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(server->preparing(), 0);
}

// More prompts than the server holds for one connection (64 MiB) pause its reading until they are
// prepared; every request is still answered.
TEST_F(TcpServerTest, PromptsBeyondTheLimitPauseReadingAndAllAreAnswered) {
  auto server = start_server();
  const std::string prompt = long_prompt(15u << 20);
  RawConnection c(server->port());
  c.handshake();
  std::thread writer([&] {
    for (uint64_t id = 1; id <= 6; ++id) c.send(generate_message(id, prompt, 4));
  });
  for (uint64_t id = 1; id <= 6; ++id) {
    const auto m = c.read(120);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->request_id(), id);
    ASSERT_TRUE(m->has_error()) << message_kind(*m);
    EXPECT_EQ(m->error().code(), client::ERROR_CONTEXT_LENGTH);
  }
  writer.join();
}

// A cancel that arrives while its request is still being prepared ends it once it is queued.
TEST_F(TcpServerTest, ACancelDuringPreparationEndsTheRequest) {
  auto server = start_server();
  RawConnection c(server->port());
  c.handshake();
  client::ClientMessage cancel;
  cancel.set_request_id(7);
  cancel.mutable_cancel();
  c.write(encode_frame(generate_message(7, "a long story", 240)) + encode_frame(cancel));
  std::optional<client::Finish> finish;
  while (!finish) {
    const auto m = c.read(60);
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ(m->request_id(), 7u);
    ASSERT_FALSE(m->has_error()) << m->error().message();
    if (m->has_finish()) finish = m->finish();
  }
  EXPECT_EQ(finish->finish_reason(), client::FINISH_REASON_CANCELLED);
  EXPECT_LT(finish->usage().completion_tokens(), 240);
  // The id is free again.
  c.send(generate_message(7, "again", 3));
  for (;;) {
    const auto m = c.read(60);
    ASSERT_TRUE(m.has_value());
    ASSERT_FALSE(m->has_error()) << m->error().message();
    if (m->has_finish()) {
      EXPECT_EQ(m->finish().usage().completion_tokens(), 3);
      break;
    }
  }
}

}  // namespace
}  // namespace shardlm::tcp
