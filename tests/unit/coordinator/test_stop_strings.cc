#include <gtest/gtest.h>

#include "coordinator/stop_strings.h"

namespace shardlm {
namespace {

// Feeds text in pieces of every size; returns the output and whether it stopped.
std::pair<std::string, bool> run(const std::vector<std::string>& stops, const std::string& text, size_t piece,
                                 bool include_stop = false) {
  StopStringMatcher m(stops, include_stop);
  std::string out;
  for (size_t i = 0; i < text.size(); i += piece) out += m.feed(text.substr(i, piece));
  out += m.flush();
  return {out, m.stopped()};
}

TEST(StopStrings, CutsBeforeTheFirstStopWhateverThePieces) {
  for (size_t piece = 1; piece <= 7; ++piece) {
    EXPECT_EQ(run({"END"}, "abc END def", piece), std::make_pair(std::string("abc "), true)) << piece;
    EXPECT_EQ(run({"xyz", "c E"}, "abc END def", piece), std::make_pair(std::string("ab"), true)) << piece;
    EXPECT_EQ(run({"ENDX"}, "abc END", piece), std::make_pair(std::string("abc END"), false)) << piece;
    EXPECT_EQ(run({}, "abc", piece), std::make_pair(std::string("abc"), false)) << piece;
    EXPECT_EQ(run({"aab"}, "aaab", piece), std::make_pair(std::string("a"), true)) << piece;
  }
}

TEST(StopStrings, ReleasesTextThatCannotStartAStopAtOnce) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.feed("hello S"), "hello ");  // "S" may begin STOP
  EXPECT_EQ(m.feed("T"), "");
  EXPECT_EQ(m.feed("x"), "STx");
  EXPECT_EQ(m.feed("STOP and more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.feed("later"), "");
}

// include_stop_str_in_output: the output ends with the stop string that matched (of two starting at
// the same place, the longer, whose text is all there).
TEST(StopStrings, IncludedStopEndsTheOutput) {
  for (size_t piece = 1; piece <= 7; ++piece) {
    EXPECT_EQ(run({"END"}, "abc END def", piece, true), std::make_pair(std::string("abc END"), true)) << piece;
    EXPECT_EQ(run({"xyz", "c E"}, "abc END def", piece, true), std::make_pair(std::string("abc E"), true)) << piece;
    EXPECT_EQ(run({"ENDX"}, "abc END", piece, true), std::make_pair(std::string("abc END"), false)) << piece;
  }
  EXPECT_EQ(run({"EN", "END"}, "abc END def", 100, true), std::make_pair(std::string("abc END"), true));
  EXPECT_EQ(run({"EN", "END"}, "abc END def", 100), std::make_pair(std::string("abc "), true));
}

// While suspended (min_tokens not reached) nothing matches and nothing is held back.
TEST(StopStrings, SuspendedMatchesNothing) {
  StopStringMatcher m({"STOP"});
  m.set_suspended(true);
  EXPECT_EQ(m.feed("a STOP b S"), "a STOP b S");
  EXPECT_FALSE(m.stopped());
  m.set_suspended(false);
  EXPECT_EQ(m.feed("x ST"), "x ");
  EXPECT_EQ(m.feed("OP y"), "");
  EXPECT_TRUE(m.stopped());
}

}  // namespace
}  // namespace shardlm
