// Stop strings over streamed text: feed text pieces; what cannot be the start of a stop string is
// released at once, a possible beginning is held back until decided. When a stop string appears the
// text before it is released and the stream ends (the stop string itself is part of the output only
// with include_stop, vLLM's include_stop_str_in_output). While suspended (vLLM's min_tokens not yet
// generated) nothing matches and all text is released.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops, bool include_stop = false);
  // Returns the text that is certain; after a hit, stopped() is true and further input is ignored.
  std::string feed(std::string_view text);
  std::string flush();  // end of the stream: releases what was held back
  bool stopped() const { return stopped_; }
  void set_suspended(bool suspended) { suspended_ = suspended; }

 private:
  std::vector<std::string> stops_;
  bool include_stop_ = false;
  bool suspended_ = false;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace shardlm
