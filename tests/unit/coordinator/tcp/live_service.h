// Shared by the TCP server tests: the tiny golden model behind a real engine, scheduler and text
// service (one per test binary, made in SetUpTestSuite), and TcpServers on free ports in front of it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "coordinator/scheduler.h"
#include "coordinator/tcp/server.h"
#include "coordinator/text_service.h"
#include "engine/engine.h"
#include "model/tokenizer.h"

namespace shardlm::tcp_test {

struct LiveService {
  StepEngine* engine = nullptr;
  Tokenizer* tokenizer = nullptr;
  Scheduler* scheduler = nullptr;
  TextService* service = nullptr;

  void start(const std::string& model_dir, int64_t max_context) {
    EngineOptions o;
    o.model_dir = model_dir;
    o.max_sequences = 8;
    o.max_context = max_context;
    o.kv_tokens = 8 * max_context;
    o.max_chunk = 64;
    engine = open_engine(o).release();
    ASSERT_NE(engine, nullptr);
    tokenizer = new Tokenizer(Tokenizer::load(model_dir));
    scheduler = new Scheduler(*engine, SchedulerOptions{});
    service = new TextService(*scheduler, *tokenizer, engine->config(), "tiny");
  }
  void stop() {
    delete service;
    scheduler->stop();
    delete scheduler;
    delete tokenizer;
    delete engine;
  }
  std::unique_ptr<tcp::TcpServer> server(tcp::TcpServerOptions o = {}) const {
    o.port = 0;
    auto s = std::make_unique<tcp::TcpServer>(*service, o);
    s->start();
    EXPECT_GT(s->port(), 0);
    return s;
  }
};

}  // namespace shardlm::tcp_test
