// Request handling, the spin-then-sleep wait loop and argument checks shared by the implementations.
#include "comm/communicator.h"

#include <algorithm>
#include <thread>

#include "common/error.h"

namespace shardlm::comm {

bool Request::test() {
  if (!state_) return true;
  bool complete;
  try {
    complete = state_->test();
  } catch (...) {
    state_.reset();
    throw;
  }
  if (complete) state_.reset();
  return complete;
}

std::string Request::describe() const { return state_ ? state_->describe() : "completed request"; }

Communicator::~Communicator() = default;

bool Communicator::test(Request& request) { return request.test(); }

void Communicator::wait(Request& request, const WaitPolicy& policy) {
  if (test(request)) return;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto spin_until = start + policy.spin;
  auto delay = std::max(policy.first_sleep, std::chrono::nanoseconds(1000));
  const auto max_sleep = std::max(policy.max_sleep, delay);
  for (;;) {
    auto now = Clock::now();
    if (policy.timeout && now - start >= *policy.timeout) {
      double seconds = std::chrono::duration<double>(now - start).count();
      fail("timed out after {:.3g} s waiting for {} (rank {} of {})", seconds, request.describe(),
           rank(), size());
    }
    if (now >= spin_until) {
      auto nap = delay;
      if (policy.timeout) nap = std::min(nap, std::chrono::nanoseconds(start + *policy.timeout - now));
      std::this_thread::sleep_for(nap);
      delay = std::min(delay * 2, max_sleep);
    }
    if (test(request)) return;
  }
}

void Communicator::wait_all(std::span<Request> requests, const WaitPolicy& policy) {
  for (auto& r : requests) wait(r, policy);
}

void Communicator::check_rank(const char* op, const char* role, int r) const {
  if (r < 0 || r >= size()) {
    fail("{}: {} rank {} is outside the communicator of {} rank(s)", op, role, r, size());
  }
}

void Communicator::check_source(const char* op, int source) const {
  if (source != kAnySource) check_rank(op, "source", source);
}

void Communicator::check_tag(const char* op, int tag, bool allow_any) {
  if (tag < 0 && !(allow_any && tag == kAnyTag)) fail("{}: tag {} is negative", op, tag);
}

void Communicator::check_buffer(const char* op, const void* p, size_t bytes) {
  if (p == nullptr && bytes != 0) fail("{}: null buffer for {} byte(s)", op, bytes);
}

std::string describe_peer_op(const char* op, const char* preposition, int peer, int tag) {
  std::string who = peer == kAnySource ? "any rank" : fmt::format("rank {}", peer);
  std::string s = fmt::format("{} {} {}", op, preposition, who);
  if (tag == kAnyTag) s += " (any tag)";
  else if (tag >= 0) s += fmt::format(" (tag {})", tag);
  return s;
}

}  // namespace shardlm::comm
