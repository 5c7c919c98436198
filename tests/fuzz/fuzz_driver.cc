// A plain driver for the libFuzzer targets, for builds without libFuzzer (gcc): linked with one
// fuzz_*.cc, it runs LLVMFuzzerTestOneInput on every input file given (seed corpora, saved crash
// reproducers), then on a deterministic series of mutants of them (bit flips, byte edits, inserted
// dictionary tokens, interesting numbers, splices of two inputs). It has no coverage feedback; it is
// the short, reproducible fuzz run of the test suite. Arguments, in libFuzzer's spelling:
//   -runs=N            mutants to run after the inputs (default 10000)
//   -seed=N            seed of the mutation sequence (default 1)
//   -max_len=N         longest mutant in bytes (default 4096)
//   -dict=FILE         libFuzzer dictionary ("token" lines) to insert from; repeatable
//   -timeout=S         one input running longer than S seconds is a hang (default 10)
//   -max_total_time=S  stop the mutants after S seconds (default: no limit)
//   -artifact_prefix=P where a failing input is written (default: current folder), as P<name>
// and any number of files or folders of inputs. A target failure (an escaping exception, an abort,
// a crash, a hang) writes the input to crash-<target>-<n> (or timeout-...), says so and exits non-zero.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_mutator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

struct Options {
  uint64_t runs = 10000;
  uint64_t seed = 1;
  size_t max_len = 4096;
  unsigned timeout_s = 10;
  double max_total_time_s = 0;
  std::string artifact_prefix = "./";
  std::vector<std::string> dicts;
  std::vector<std::string> inputs;
};

// ---- the input being run, for the signal handler ----------------------------------------------

const uint8_t* g_data = nullptr;
size_t g_size = 0;
const char* g_name = nullptr;  // the input file being run, or nullptr for a mutant
uint64_t g_mutant = 0;
char g_artifact[4096] = "crash-input";
char g_timeout_artifact[4096] = "timeout-input";

void write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w <= 0) return;
    c += w;
    n -= static_cast<size_t>(w);
  }
}

void say(const char* s) { write_all(2, s, std::strlen(s)); }

// Async-signal-safe: names the input being run.
void say_input() {
  if (g_name) {
    say(g_name);
    return;
  }
  char digits[24];
  int n = 0;
  uint64_t v = g_mutant;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  char text[32] = "mutant ";
  int k = 7;
  while (n > 0) text[k++] = digits[--n];
  text[k] = '\0';
  say(text);
}

// Async-signal-safe: writes the current input to `path`.
void save_input(const char* path) {
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    say("fuzz driver: cannot write the failing input\n");
    return;
  }
  if (g_data && g_size) write_all(fd, g_data, g_size);
  ::close(fd);
  say("fuzz driver: failing input written to ");
  say(path);
  say("\n");
}

void on_signal(int sig) {
  if (sig == SIGALRM) {
    say("fuzz driver: ");
    say_input();
    say(": timeout: the input ran longer than -timeout\n");
    save_input(g_timeout_artifact);
    ::_exit(70);
  }
  say("fuzz driver: ");
  say_input();
  say(": fatal signal ");
  say(sig == SIGSEGV ? "SIGSEGV" : sig == SIGABRT ? "SIGABRT" : sig == SIGFPE ? "SIGFPE" : sig == SIGBUS ? "SIGBUS" : "SIGILL");
  say("\n");
  save_input(g_artifact);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// On an alternate stack, so that a stack overflow is reported too.
void install_handlers() {
  static std::vector<char> alt_stack(1 << 16);
  stack_t ss{};
  ss.ss_sp = alt_stack.data();
  ss.ss_size = alt_stack.size();
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGABRT, SIGFPE, SIGBUS, SIGILL, SIGALRM}) ::sigaction(sig, &sa, nullptr);
}

// ---- running one input --------------------------------------------------------------------------

// `name`: the input file, or nullptr for mutant number `mutant`.
void run_one(const Options& opt, const std::string& input, const char* name, uint64_t mutant) {
  g_data = reinterpret_cast<const uint8_t*>(input.data());
  g_size = input.size();
  g_name = name;
  g_mutant = mutant;
  ::alarm(opt.timeout_s);
  try {
    LLVMFuzzerTestOneInput(g_data, g_size);
  } catch (...) {
    ::alarm(0);
    const std::string label = name ? std::string(name) : "mutant " + std::to_string(mutant);
    try {
      throw;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz driver: %s: uncaught exception: %s\n", label.c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "fuzz driver: %s: uncaught exception of unknown type\n", label.c_str());
    }
    save_input(g_artifact);
    std::exit(1);
  }
  ::alarm(0);
}

// ---- inputs and dictionaries --------------------------------------------------------------------

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz driver: cannot read %s\n", p.c_str());
    std::exit(2);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Files given, and the regular files of folders given (sorted by name, so runs repeat exactly).
std::vector<std::pair<std::string, std::string>> read_inputs(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& path : paths) {
    if (fs::is_directory(path)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(path)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) out.emplace_back(f.string(), read_file(f));
    } else if (fs::exists(path)) {
      out.emplace_back(path, read_file(path));
    } else {
      std::fprintf(stderr, "fuzz driver: no such input file or folder: %s\n", path.c_str());
      std::exit(2);
    }
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// libFuzzer dictionary: lines `name="value"` or `"value"` with \\, \" and \xNN escapes; # comments.
std::vector<std::string> read_dict(const std::string& path) {
  std::vector<std::string> tokens;
  std::istringstream lines(read_file(path));
  std::string line;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    const size_t open = line.find('"');
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const size_t close = line.rfind('"');
    if (open == std::string::npos || close == open) {
      std::fprintf(stderr, "fuzz driver: %s:%d: not a dictionary entry\n", path.c_str(), line_no);
      std::exit(2);
    }
    std::string token;
    for (size_t i = open + 1; i < close; ++i) {
      if (line[i] != '\\' || i + 1 >= close) {
        token.push_back(line[i]);
      } else if (line[i + 1] == 'x' && i + 3 < close && hex_digit(line[i + 2]) >= 0 && hex_digit(line[i + 3]) >= 0) {
        token.push_back(static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3])));
        i += 3;
      } else {
        token.push_back(line[++i]);
      }
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

bool parse_number(const std::string& arg, const char* name, double& out) {
  const std::string prefix = std::string("-") + name + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  char* end = nullptr;
  out = std::strtod(arg.c_str() + prefix.size(), &end);
  if (end == arg.c_str() + prefix.size() || *end != '\0' || out < 0) {
    std::fprintf(stderr, "fuzz driver: bad value in %s\n", arg.c_str());
    std::exit(2);
  }
  return true;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    double v = 0;
    if (parse_number(a, "runs", v)) o.runs = static_cast<uint64_t>(v);
    else if (parse_number(a, "seed", v)) o.seed = static_cast<uint64_t>(v);
    else if (parse_number(a, "max_len", v)) o.max_len = static_cast<size_t>(v);
    else if (parse_number(a, "timeout", v)) o.timeout_s = static_cast<unsigned>(v);
    else if (parse_number(a, "max_total_time", v)) o.max_total_time_s = v;
    else if (a.rfind("-dict=", 0) == 0) o.dicts.push_back(a.substr(6));
    else if (a.rfind("-artifact_prefix=", 0) == 0) o.artifact_prefix = a.substr(17);
    else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "fuzz driver: unknown option %s\n", a.c_str());
      std::exit(2);
    } else {
      o.inputs.push_back(a);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);
  const std::string target = std::filesystem::path(argv[0]).filename().string();
  std::snprintf(g_artifact, sizeof g_artifact, "%scrash-%s-seed%llu", opt.artifact_prefix.c_str(), target.c_str(),
                static_cast<unsigned long long>(opt.seed));
  std::snprintf(g_timeout_artifact, sizeof g_timeout_artifact, "%stimeout-%s-seed%llu", opt.artifact_prefix.c_str(),
                target.c_str(), static_cast<unsigned long long>(opt.seed));
  install_handlers();

  std::vector<std::string> dict;
  for (const std::string& d : opt.dicts) {
    std::vector<std::string> t = read_dict(d);
    dict.insert(dict.end(), t.begin(), t.end());
  }
  const auto named_inputs = read_inputs(opt.inputs);
  std::vector<std::string> corpus;
  for (const auto& [name, data] : named_inputs) {
    corpus.push_back(data);
  }
  if (corpus.empty()) corpus.emplace_back();

  const auto start = std::chrono::steady_clock::now();
  uint64_t executed = 0;
  for (const auto& [name, data] : named_inputs) {
    run_one(opt, data, name.c_str(), 0);
    ++executed;
  }

  // Random walk: each mutant starts from the previous one, restarting from a corpus input every so
  // often, so mutations stack up without drifting away from the corpus for good.
  shardlm::fuzz::Mutator mutator(opt.seed, dict, corpus, opt.max_len);
  std::string current;
  uint64_t mutants = 0;
  for (; mutants < opt.runs; ++mutants) {
    if (mutants % 16 == 0 || mutator.rng().below(4) == 0) current = corpus[mutator.rng().below(corpus.size())];
    mutator.mutate(current);
    run_one(opt, current, nullptr, mutants);
    ++executed;
    if (opt.max_total_time_s > 0 && (mutants & 63) == 0) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed >= opt.max_total_time_s) {
        ++mutants;
        break;
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %llu executions (%zu inputs, %llu mutants, seed %llu) in %.2f s, no failure\n", target.c_str(),
              static_cast<unsigned long long>(executed), named_inputs.size(), static_cast<unsigned long long>(mutants),
              static_cast<unsigned long long>(opt.seed), elapsed);
  return 0;
}
