// LogThrottle: a repeating warning is logged once per interval, then with the count held back.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "common/log_throttle.h"

namespace shardlm {
namespace {

TEST(LogThrottle, RepeatsAreHeldBackAndCounted) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  sink->set_pattern("%v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("throttle-test", sink));
  LogThrottle throttle(std::chrono::milliseconds(200));
  for (int i = 0; i < 50; ++i) throttle.warn("accept failed: Too many open files");
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  throttle.warn("accept failed: Too many open files");
  spdlog::set_default_logger(previous);
  const std::vector<std::string> lines = sink->last_formatted();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "accept failed: Too many open files\n");
  EXPECT_EQ(lines[1], "accept failed: Too many open files (49 more like it since the last)\n");
}

}  // namespace
}  // namespace shardlm
