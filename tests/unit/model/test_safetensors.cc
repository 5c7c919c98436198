// safetensors reader and writer: the golden files, writer -> reader round trips, and malformed
// headers (hand-written cases plus a randomised mutation test).
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/safetensors.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kData = SHARDLM_TEST_DATA;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

uint64_t le64(const std::string& b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

std::string prefix64(uint64_t n) {
  std::string p(8, '\0');
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(n >> (8 * i));
  return p;
}

// A safetensors file image: 8-byte length, header text, data bytes.
std::string image(const std::string& header, const std::string& data) {
  return prefix64(header.size()) + header + data;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message of the shardlm::Error thrown by f, or a marker when it throws something else / nothing.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<non-Error exception: ") + e.what() + ">";
  } catch (...) {
    return "<non-Error exception>";
  }
  return "<no error>";
}

std::string parse_error(const std::string& bytes, const std::string& path = "mem.safetensors") {
  return error_of([&] {
    SafetensorsFile::parse_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), bytes.size(), path);
  });
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "shardlm_st_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------

TEST(Dtype, NamesSizesAndParsing) {
  EXPECT_STREQ(dtype_name(DType::kF32), "F32");
  EXPECT_STREQ(dtype_name(DType::kF16), "F16");
  EXPECT_STREQ(dtype_name(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  for (const char* other : {"I64", "F64", "U8", "BOOL", "F8_E4M3"}) {
    std::string msg = error_of([&] { parse_dtype(other); });
    EXPECT_TRUE(contains(msg, "unsupported dtype")) << msg;
    EXPECT_TRUE(contains(msg, other)) << msg;
  }
  EXPECT_TRUE(contains(error_of([] { parse_dtype("bf16"); }), "unknown dtype"));
  EXPECT_TRUE(contains(error_of([] { parse_dtype(""); }), "unknown dtype"));
}

TEST(TensorInfo, Numel) {
  TensorInfo t;
  EXPECT_EQ(t.numel(), 1);  // 0-D
  t.shape = {3, 4, 5};
  EXPECT_EQ(t.numel(), 60);
  t.shape = {7, 0, 1ll << 62, 1ll << 62};
  EXPECT_EQ(t.numel(), 0);
  t.shape = {1ll << 40, 1ll << 40};
  EXPECT_TRUE(contains(error_of([&] { (void)t.numel(); }), "invalid shape"));
}

// ---------------------------------------------------------------------------------------------
// Golden files

TEST(SafetensorsGolden, DenseHeader) {
  const std::string path = kData + "/dense/model.safetensors";
  SafetensorsFile f = SafetensorsFile::open(path);
  const std::string bytes = read_file(path);
  const uint64_t header_len = le64(bytes);
  json header = json::parse(bytes.substr(8, header_len));
  ASSERT_EQ(header.size(), 85u);  // 84 tensors + __metadata__
  EXPECT_EQ(f.tensors().size(), 84u);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.file_size(), bytes.size());
  ASSERT_EQ(f.metadata().size(), 1u);
  EXPECT_EQ(f.metadata().at("format"), "pt");

  // Against the JSON read independently: every entry, with the offsets made absolute.
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    ASSERT_TRUE(f.tensors().count(name)) << name;
    const TensorInfo& t = f.tensors().at(name);
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(dtype_name(t.dtype), entry["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, entry["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.begin, 8 + header_len + entry["data_offsets"][0].get<uint64_t>());
    EXPECT_EQ(t.end, 8 + header_len + entry["data_offsets"][1].get<uint64_t>());
  }

  // The embedding is [vocab, hidden] of config.json; it is BF16 like everything in dense/.
  json config = json::parse(read_file(kData + "/dense/config.json"));
  const TensorInfo& embed = f.tensors().at("model.language_model.embed_tokens.weight");
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{config["text_config"]["vocab_size"].get<int64_t>(),
                                                config["text_config"]["hidden_size"].get<int64_t>()}));
  EXPECT_EQ(embed.dtype, DType::kBF16);
  EXPECT_EQ(embed.nbytes(), static_cast<uint64_t>(embed.numel()) * 2);

  // HF files pack the tensors back to back from the start of the data section to the end of file.
  std::vector<const TensorInfo*> order;
  for (const auto& [name, t] : f.tensors()) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  uint64_t at = 8 + header_len;
  for (const TensorInfo* t : order) {
    EXPECT_EQ(t->begin, at) << t->name;
    at = t->end;
  }
  EXPECT_EQ(at, bytes.size());

  // data() points at the tensor's bytes in the file.
  EXPECT_EQ(std::memcmp(f.data(embed), bytes.data() + embed.begin, embed.nbytes()), 0);
}

TEST(SafetensorsGolden, ShardHeadersAreF32) {
  json index = json::parse(read_file(kData + "/dense-f32-sharded/model.safetensors.index.json"));
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
  ASSERT_EQ(shards.size(), 5u);
  size_t total = 0;
  for (const std::string& s : shards) {
    SafetensorsFile f = SafetensorsFile::open(kData + "/dense-f32-sharded/" + s);
    for (const auto& [name, t] : f.tensors()) {
      EXPECT_EQ(t.dtype, DType::kF32) << name;
      EXPECT_EQ(index["weight_map"][name], s) << name;
    }
    total += f.tensors().size();
  }
  EXPECT_EQ(total, 84u);
}

// ---------------------------------------------------------------------------------------------
// Writer -> reader

struct Declared {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::vector<Declared> odd_tensors(std::mt19937_64& rng) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {1}, {3, 5}, {2, 0, 4}, {7, 1, 3}, {1, 1, 1, 1, 1}, {13},
                                                    {5, 17}};
  std::vector<Declared> out;
  int i = 0;
  for (DType d : {DType::kBF16, DType::kF32, DType::kF16}) {
    for (const auto& s : shapes) {
      Declared t{"t" + std::to_string(i++) + "." + dtype_name(d), d, s, ""};
      int64_t n = 1;
      for (int64_t x : s) n *= x;
      t.bytes.resize(static_cast<size_t>(n) * dtype_size(d));
      for (char& c : t.bytes) c = static_cast<char>(rng());
      out.push_back(std::move(t));
    }
  }
  return out;
}

TEST(SafetensorsWriter, RoundTripAllDtypesAndOddShapes) {
  TempDir dir;
  std::mt19937_64 rng(7);
  std::vector<Declared> tensors = odd_tensors(rng);
  std::shuffle(tensors.begin(), tensors.end(), rng);  // declaration order is not name order
  const std::string path = dir.file("rt.safetensors");
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  uint64_t total = 0;
  {
    SafetensorsWriter w(path);
    for (const Declared& t : tensors) {
      w.declare(t.name, t.dtype, t.shape);
      total += t.bytes.size();
    }
    EXPECT_EQ(w.data_bytes(), total);
    w.begin_data(metadata);
    EXPECT_FALSE(fs::exists(path));  // only the .tmp exists while writing
    EXPECT_TRUE(fs::exists(path + ".tmp"));
    // Stream in uneven pieces that cross tensor boundaries.
    std::string all;
    for (const Declared& t : tensors) all += t.bytes;
    size_t at = 0;
    while (at < all.size()) {
      size_t n = std::min<size_t>(all.size() - at, 1 + rng() % 37);
      w.append(all.data() + at, n);
      at += n;
    }
    w.finish();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // Independent look at the bytes: padded header, offsets in declaration order.
  const std::string bytes = read_file(path);
  const uint64_t n = le64(bytes);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + total);
  std::string header_text = bytes.substr(8, n);
  size_t close = header_text.find_last_of('}');
  EXPECT_EQ(header_text.find_first_not_of(' ', close + 1), std::string::npos);
  EXPECT_LT(header_text.size() - close - 1, 8u);
  json header = json::parse(header_text);
  EXPECT_EQ(header["__metadata__"], json(metadata));
  uint64_t expect_begin = 0;
  for (const Declared& t : tensors) {
    const json& e = header[t.name];
    EXPECT_EQ(e["dtype"], dtype_name(t.dtype));
    EXPECT_EQ(e["shape"].get<std::vector<int64_t>>(), t.shape);
    EXPECT_EQ(e["data_offsets"][0].get<uint64_t>(), expect_begin) << t.name;
    expect_begin += t.bytes.size();
    EXPECT_EQ(e["data_offsets"][1].get<uint64_t>(), expect_begin) << t.name;
  }

  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), metadata);
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (const Declared& t : tensors) {
    const TensorInfo& info = f.tensors().at(t.name);
    EXPECT_EQ(info.dtype, t.dtype);
    EXPECT_EQ(info.shape, t.shape);
    ASSERT_EQ(info.nbytes(), t.bytes.size());
    EXPECT_EQ(std::memcmp(f.data(info), t.bytes.data(), t.bytes.size()), 0) << t.name;
  }
}

TEST(SafetensorsWriter, LargeAppendsAndNoMetadata) {
  TempDir dir;
  const std::string path = dir.file("big.safetensors");
  std::string big(9u << 20, '\0');  // bigger than the write buffer
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 9));
  {
    SafetensorsWriter w(path);
    w.declare("small", DType::kBF16, {3});
    w.declare("big", DType::kF32, {static_cast<int64_t>(big.size() / 4)});
    w.begin_data({});
    w.append("abcdef", 6);
    w.append(big.data(), 5);
    w.append(big.data() + 5, big.size() - 5);
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data(f.tensors().at("small"))), 6), "abcdef");
  EXPECT_EQ(std::memcmp(f.data(f.tensors().at("big")), big.data(), big.size()), 0);
  EXPECT_FALSE(contains(read_file(path).substr(0, 64), "__metadata__"));
}

TEST(SafetensorsWriter, EmptyFileIsValid) {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  {
    SafetensorsWriter w(path);
    w.begin_data();
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.metadata().at("format"), "pt");
}

TEST(SafetensorsWriter, RejectsMisuse) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  {
    SafetensorsWriter w(path);
    w.declare("a", DType::kF32, {2});
    EXPECT_TRUE(contains(error_of([&] { w.declare("a", DType::kF32, {2}); }), "declared twice"));
    EXPECT_TRUE(contains(error_of([&] { w.declare("neg", DType::kF32, {2, -1}); }), "negative"));
    EXPECT_TRUE(contains(error_of([&] { w.declare("", DType::kF32, {2}); }), "not a valid tensor name"));
    EXPECT_TRUE(contains(error_of([&] { w.declare("__metadata__", DType::kF32, {2}); }), "not a valid tensor name"));
    EXPECT_TRUE(contains(error_of([&] { w.declare("huge", DType::kF32, {1ll << 40, 1ll << 40}); }), "huge"));
    EXPECT_TRUE(contains(error_of([&] { w.append("x", 1); }), "append outside"));
    EXPECT_TRUE(contains(error_of([&] { w.finish(); }), "finish without begin_data"));
    w.begin_data();
    EXPECT_TRUE(contains(error_of([&] { w.declare("b", DType::kF32, {1}); }), "after begin_data"));
    EXPECT_TRUE(contains(error_of([&] { w.begin_data(); }), "twice"));
    float v[3] = {1, 2, 3};
    std::string over = error_of([&] { w.append(v, sizeof v); });  // 12 > 8 declared
    EXPECT_TRUE(contains(over, "exceed")) << over;
    w.append(v, 4);
    std::string under = error_of([&] { w.finish(); });
    EXPECT_TRUE(contains(under, "4 of the 8")) << under;
    EXPECT_FALSE(fs::exists(path));
  }
  // Destroyed unfinished: neither the file nor the temporary remains.
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SafetensorsWriter, AbandonedWriterLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  write_file(path, "old contents");  // an existing file is only replaced by a finished write
  {
    SafetensorsWriter w(path);
    w.declare("a", DType::kBF16, {1000});
    w.begin_data();
    std::string half(1000, 'x');
    w.append(half.data(), half.size());
  }
  EXPECT_EQ(read_file(path), "old contents");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SafetensorsIndex, WritesJsonAndRejectsEscapingNames) {
  TempDir dir;
  write_safetensors_index(dir.path(), {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}, 1234);
  json doc = json::parse(read_file(dir.file("model.safetensors.index.json")));
  EXPECT_EQ(doc["metadata"]["total_size"], 1234);
  EXPECT_EQ(doc["weight_map"]["a"], "s1.safetensors");
  EXPECT_EQ(doc["weight_map"]["b"], "s2.safetensors");
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors.index.json.tmp")));
  for (const char* bad : {"../x.safetensors", "sub/x.safetensors", "", ".."}) {
    std::string msg = error_of([&] { write_safetensors_index(dir.path(), {{"a", bad}}, 0); });
    EXPECT_TRUE(contains(msg, "not a plain file name")) << bad << ": " << msg;
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed files

TEST(SafetensorsMalformed, FileLevel) {
  TempDir dir;
  auto open_error = [&](const std::string& name, const std::string& bytes) {
    write_file(dir.file(name), bytes);
    return error_of([&] { SafetensorsFile::open(dir.file(name)); });
  };
  // Truncated below the length prefix.
  for (size_t n : {0, 1, 7}) {
    std::string msg = open_error("short.safetensors", std::string(n, '\x01'));
    EXPECT_TRUE(contains(msg, "shorter than the 8-byte")) << msg;
    EXPECT_TRUE(contains(msg, dir.file("short.safetensors"))) << msg;
  }
  // Header length beyond the file, and a truncated valid file.
  const std::string valid = image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x'));
  std::string msg = open_error("long.safetensors", prefix64(1000) + "{}");
  EXPECT_TRUE(contains(msg, "runs past the end of the file")) << msg;
  msg = open_error("cut.safetensors", valid.substr(0, valid.size() - 1));
  EXPECT_TRUE(contains(msg, "past the end of the data section")) << msg;
  EXPECT_TRUE(contains(msg, "tensor 't'")) << msg;
  msg = open_error("cut2.safetensors", valid.substr(0, 20));
  EXPECT_TRUE(contains(msg, "runs past the end of the file")) << msg;
  // Above the cap, even if the file were that long.
  msg = parse_error(prefix64(kMaxSafetensorsHeaderBytes + 1) + "{}");
  EXPECT_TRUE(contains(msg, "exceeds the limit")) << msg;
  msg = parse_error(prefix64(~0ull) + "{}");
  EXPECT_TRUE(contains(msg, "exceeds the limit")) << msg;
  // Not files.
  EXPECT_TRUE(contains(error_of([&] { SafetensorsFile::open(dir.file("missing")); }), "cannot open"));
  EXPECT_TRUE(contains(error_of([&] { SafetensorsFile::open(dir.path()); }), "not a regular file"));
  ASSERT_EQ(mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_TRUE(contains(error_of([&] { SafetensorsFile::open(dir.file("fifo")); }), "not a regular file"));
  // The valid one opens.
  write_file(dir.file("ok.safetensors"), valid);
  EXPECT_EQ(SafetensorsFile::open(dir.file("ok.safetensors")).tensors().size(), 1u);
}

TEST(SafetensorsMalformed, ParseHeaderNeedsTheBytes) {
  const std::string valid = image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x'));
  const auto* p = reinterpret_cast<const uint8_t*>(valid.data());
  // Only part of the header in memory, though the file is long enough.
  std::string msg = error_of([&] { SafetensorsFile::parse_header(p, 20, valid.size(), "f"); });
  EXPECT_TRUE(contains(msg, "runs past the 20 bytes given")) << msg;
  // The header alone in memory is enough.
  EXPECT_EQ(SafetensorsFile::parse_header(p, valid.size() - 8, valid.size(), "f").size(), 1u);
}

struct BadHeader {
  const char* what;
  std::string header;
  size_t data_bytes;
  std::vector<std::string> message_parts;
};

TEST(SafetensorsMalformed, Headers) {
  const std::string ok = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::vector<BadHeader> cases = {
      {"bad json", R"({"t": )", 8, {"not valid JSON"}},
      {"empty header", "", 8, {"not valid JSON"}},
      {"trailing junk", "{} x", 8, {"not valid JSON"}},
      {"not utf-8", "{\"t\xff\": 1}", 8, {"not valid JSON"}},
      {"array header", "[1, 2]", 8, {"not an object"}},
      {"string header", R"("hello")", 8, {"not an object"}},
      {"number header", "42", 8, {"not an object"}},
      {"null header", "null", 8, {"not an object"}},
      {"metadata array", R"({"__metadata__": [1]})", 8, {"__metadata__", "not an object"}},
      {"metadata int", R"({"__metadata__": {"a": 1}})", 8, {"__metadata__ entry 'a'", "not a string"}},
      {"entry not object", R"({"t": 5})", 8, {"tensor 't'", "not a JSON object"}},
      {"missing dtype", R"({"t": {"shape":[2],"data_offsets":[0,8]}})", 8, {"tensor 't'", "missing 'dtype'"}},
      {"missing shape", R"({"t": {"dtype":"F32","data_offsets":[0,8]}})", 8, {"tensor 't'", "missing 'shape'"}},
      {"missing offsets", R"({"t": {"dtype":"F32","shape":[2]}})", 8, {"tensor 't'", "missing 'data_offsets'"}},
      {"unknown key", R"({"t": {)" + ok + R"(,"extra":1}})", 8, {"tensor 't'", "unknown key 'extra'"}},
      {"unsupported dtype's size", R"({"t": {"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", 8,
       {"tensor 't'", "hold 8 bytes, but I64 [2] needs 16"}},
      {"packed dtype's size", R"({"t": {"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", 8,
       {"tensor 't'", "hold 1 bytes, but F4 [3] needs 2"}},
      {"unknown dtype", R"({"t": {"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8, {"tensor 't'", "unknown dtype"}},
      {"dtype not string", R"({"t": {"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8, {"'dtype' is not a string"}},
      {"shape not array", R"({"t": {"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8, {"'shape' is not an array"}},
      {"negative shape", R"({"t": {"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, {"tensor 't'", "dimension 0 is -2"}},
      {"float shape", R"({"t": {"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8, {"dimension 0"}},
      {"string shape", R"({"t": {"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8, {"dimension 0"}},
      {"bool shape", R"({"t": {"dtype":"F32","shape":[1,true],"data_offsets":[0,8]}})", 8, {"dimension 1"}},
      {"shape above int64", R"({"t": {"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", 8,
       {"dimension 0"}},
      {"shape number overflow", R"({"t": {"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}})", 8, {"not valid JSON"}},
      {"element overflow", R"({"t": {"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
       {"tensor 't'", "more elements than fit"}},
      {"element overflow 3d", R"({"t": {"dtype":"BF16","shape":[3037000500,3037000500,2],"data_offsets":[0,8]}})", 8,
       {"more elements than fit"}},
      {"byte overflow", R"({"t": {"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8,
       {"tensor 't'", "more bytes than fit"}},
      {"huge shape small data", R"({"t": {"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,8]}})", 8,
       {"hold 8 bytes", "needs 4000000000000"}},
      {"size mismatch", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8,
       {"tensor 't'", "hold 4 bytes, but F32 [2] needs 8"}},
      {"size mismatch bf16", R"({"t": {"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", 8, {"needs 8"}},
      {"offsets reversed", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, {"end before they begin"}},
      {"offsets past end", R"({"t": {"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8,
       {"tensor 't'", "past the end of the data section (8 bytes)"}},
      {"offsets far past end", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
       8, {"past the end"}},
      {"offsets one", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, {"'data_offsets' is [0]"}},
      {"offsets three", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8, {"'data_offsets'"}},
      {"offsets negative", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8, {"'data_offsets'"}},
      {"offsets string", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", 8, {"'data_offsets'"}},
      {"offsets object", R"({"t": {"dtype":"F32","shape":[2],"data_offsets":{"a":0}}})", 8, {"'data_offsets'"}},
      {"overlap", R"({"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       16, {"'a'", "'b'", "overlap"}},
      {"contained", R"({"a": {"dtype":"F32","shape":[4],"data_offsets":[0,16]}, "b": {"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       16, {"overlap"}},
      {"overlap after gap", R"({"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "b": {"dtype":"F32","shape":[3],"data_offsets":[4,16]}, "c": {"dtype":"BF16","shape":[2],"data_offsets":[12,16]}})",
       16, {"'b'", "'c'", "overlap"}},
      {"same place", R"({"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "b": {"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})",
       8, {"overlap"}},
      {"duplicate tensor", R"({"t": {)" + ok + R"(}, "t": {)" + ok + "}}", 8, {"key 't' twice"}},
      {"duplicate field", R"({"t": {"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, {"'dtype' twice"}},
      {"deep nesting", R"({"t": {"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", 8, {"nested deeper"}},
      {"very deep nesting", std::string(100000, '[') + std::string(100000, ']'), 8, {"nested deeper"}},
      {"empty name", R"({"": {)" + ok + "}}", 8, {"empty name"}},
  };
  for (const BadHeader& c : cases) {
    std::string msg = parse_error(image(c.header, std::string(c.data_bytes, '\0')), "/x/bad.safetensors");
    EXPECT_TRUE(contains(msg, "/x/bad.safetensors")) << c.what << ": " << msg;
    for (const std::string& part : c.message_parts) EXPECT_TRUE(contains(msg, part)) << c.what << ": " << msg;
  }
}

TEST(SafetensorsMalformed, EdgeCasesThatAreValid) {
  auto parse = [](const std::string& header, size_t data) {
    std::string b = image(header, std::string(data, '\0'));
    return SafetensorsFile::parse_header(reinterpret_cast<const uint8_t*>(b.data()), b.size(), b.size(), "f");
  };
  EXPECT_TRUE(parse("{}", 0).empty());
  EXPECT_TRUE(parse("{}      ", 0).empty());  // padding spaces
  EXPECT_TRUE(parse(R"({"__metadata__": {}})", 0).empty());
  // Zero-size tensors may share an offset and sit anywhere; a zero dimension cancels a huge one.
  const std::string header = R"({"a": {"dtype":"F32","shape":[0],"data_offsets":[4,4]},
                     "b": {"dtype":"F32","shape":[4611686018427387904,0],"data_offsets":[4,4]},
                     "c": {"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                     "d": {"dtype":"F16","shape":[],"data_offsets":[8,10]}})";
  auto t = parse(header, 10);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t["a"].nbytes(), 0u);
  EXPECT_EQ(t["b"].numel(), 0);
  EXPECT_EQ(t["d"].numel(), 1);
  const uint64_t data_start = 8 + header.size();
  EXPECT_EQ(t["c"].begin, data_start);
  EXPECT_EQ(t["d"].end, data_start + 10);
}

// ---------------------------------------------------------------------------------------------
// Randomised: mutated headers either parse into in-bounds tensors or throw shardlm::Error.

class HeaderMutator {
 public:
  explicit HeaderMutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  std::string token() {
    static const std::vector<std::string> kTokens = {
        "{", "}", "[", "]", ",", ":", "\"", "0", "-1", "1e400", "18446744073709551615", "18446744073709551616",
        "9223372036854775807", "4294967296", "2.5", "true", "null", "\"F32\"", "\"BF16\"", "\"F16\"", "\"I64\"",
        "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "[0,0]", "[]", "{}", "\\u0000", "\\",
        " ", "\xff", "\xc3\xa9"};
    return kTokens[below(kTokens.size())];
  }

  std::string interesting_number() {
    static const std::vector<std::string> kNumbers = {"0", "1", "2", "3", "7", "8", "16", "-1", "-8",
                                                      "4611686018427387904", "9223372036854775807",
                                                      "9223372036854775808", "18446744073709551615", "65536",
                                                      "1e3", "0.5", "4294967295", "4294967297"};
    if (rng_() % 3 == 0) return std::to_string(rng_() % 200);
    return kNumbers[below(kNumbers.size())];
  }

  // Mutates the header text; sometimes the length prefix or the data too (returned via the flags).
  void mutate(std::string& header, std::string& data, uint64_t& prefix, bool& keep_prefix) {
    switch (rng_() % 10) {
      case 0:  // random byte
        if (!header.empty()) header[below(header.size())] = static_cast<char>(rng_());
        break;
      case 1:  // insert a JSON-ish token
        header.insert(below(header.size() + 1), token());
        break;
      case 2: {  // delete a span
        if (header.empty()) break;
        size_t at = below(header.size());
        header.erase(at, 1 + below(std::min<size_t>(16, header.size() - at)));
        break;
      }
      case 3:
      case 4:
      case 5: {  // replace a run of digits by an interesting number
        std::vector<size_t> starts;
        for (size_t i = 0; i < header.size(); ++i) {
          if (isdigit(static_cast<unsigned char>(header[i])) &&
              (i == 0 || !isdigit(static_cast<unsigned char>(header[i - 1])))) {
            starts.push_back(i);
          }
        }
        if (starts.empty()) break;
        size_t at = starts[below(starts.size())];
        size_t end = at;
        while (end < header.size() && isdigit(static_cast<unsigned char>(header[end]))) ++end;
        header.replace(at, end - at, interesting_number());
        break;
      }
      case 6: {  // duplicate a span somewhere
        if (header.empty()) break;
        size_t at = below(header.size());
        std::string span = header.substr(at, 1 + below(40));
        header.insert(below(header.size() + 1), span);
        break;
      }
      case 7:  // length prefix off by a little or a lot
        keep_prefix = false;
        prefix = (rng_() % 2) ? header.size() + below(17) - 8 : rng_();
        break;
      case 8:  // truncate or grow the data section
        if (rng_() % 2 && !data.empty()) {
          data.resize(below(data.size()));
        } else {
          data.append(below(24), 'z');
        }
        break;
      case 9:  // swap a dtype
        for (const char* from : {"\"F32\"", "\"BF16\"", "\"F16\""}) {
          size_t at = header.find(from);
          if (at != std::string::npos && rng_() % 2) {
            static const char* kTo[] = {"\"F32\"", "\"BF16\"", "\"F16\"", "\"U8\"", "\"X\""};
            header.replace(at, std::strlen(from), kTo[below(5)]);
            break;
          }
        }
        break;
    }
  }

 private:
  std::mt19937_64 rng_;
};

std::string written_sample(const std::string& dir, int which) {
  const std::string path = dir + "/sample" + std::to_string(which) + ".safetensors";
  SafetensorsWriter w(path);
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  if (which == 0) t = {{"w", {2, 3}}, {"b", {3}}, {"s", {}}};
  if (which == 1) t = {{"model.layers.0.q.weight", {4, 2}}, {"e", {0, 5}}, {"n", {1}}};
  uint64_t total = 0;
  DType d[] = {DType::kF32, DType::kBF16, DType::kF16};
  for (size_t i = 0; i < t.size(); ++i) {
    w.declare(t[i].first, d[(i + which) % 3], t[i].second);
  }
  total = w.data_bytes();
  w.begin_data(which == 0 ? std::map<std::string, std::string>{{"format", "pt"}} : std::map<std::string, std::string>{});
  std::string bytes(total, '\x5a');
  w.append(bytes.data(), bytes.size());
  w.finish();
  return read_file(path);
}

TEST(SafetensorsFuzz, MutatedHeadersParseOrThrowError) {
  TempDir dir;
  std::vector<std::string> samples = {written_sample(dir.path(), 0), written_sample(dir.path(), 1)};
  samples.push_back(image(R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          std::string(12, '\x01')));
  const std::string golden = read_file(kData + "/dense/model.safetensors");
  const uint64_t golden_header = le64(golden);

  HeaderMutator m(20240611);
  int parsed = 0, rejected = 0, other = 0;
  const auto start = std::chrono::steady_clock::now();
  const int kIterations = 30000;
  for (int iter = 0; iter < kIterations; ++iter) {
    // Mostly small samples held entirely in memory; sometimes the golden header against its real size.
    const bool use_golden = iter % 50 == 0;
    const std::string& base = use_golden ? golden : samples[m.below(samples.size())];
    const uint64_t base_header = use_golden ? golden_header : le64(base);
    std::string header = base.substr(8, base_header);
    std::string data = use_golden ? std::string() : base.substr(8 + base_header);
    uint64_t prefix = 0;
    bool keep_prefix = true;
    const size_t rounds = 1 + m.below(3);
    for (size_t r = 0; r < rounds; ++r) m.mutate(header, data, prefix, keep_prefix);
    if (keep_prefix) prefix = header.size();
    const std::string bytes = prefix64(prefix) + header + data;
    const uint64_t file_size = use_golden ? golden.size() + (bytes.size() - (8 + base_header)) : bytes.size();
    try {
      auto tensors = SafetensorsFile::parse_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                                   file_size, "fuzz");
      ++parsed;
      // In bounds, consistent, disjoint; touch the bytes that are in memory.
      const uint64_t data_start = 8 + prefix;
      std::vector<std::pair<uint64_t, uint64_t>> spans;
      uint64_t sum = 0;
      for (const auto& [name, t] : tensors) {
        ASSERT_FALSE(name.empty());
        ASSERT_EQ(name, t.name);
        ASSERT_GE(t.begin, data_start) << name;
        ASSERT_LE(t.begin, t.end) << name;
        ASSERT_LE(t.end, file_size) << name;
        const uint64_t bits = t.unsupported_dtype.empty() ? 8 * dtype_size(t.dtype) : unsupported_dtype_bits(t.unsupported_dtype);
        ASSERT_EQ(t.nbytes(), (static_cast<uint64_t>(t.numel()) * bits + 7) / 8) << name;
        for (int64_t d : t.shape) ASSERT_GE(d, 0);
        if (t.end > t.begin) spans.emplace_back(t.begin, t.end);
        for (uint64_t i = t.begin; i < std::min<uint64_t>(t.end, bytes.size()); ++i) sum += static_cast<uint8_t>(bytes[i]);
      }
      std::sort(spans.begin(), spans.end());
      for (size_t i = 1; i < spans.size(); ++i) ASSERT_LE(spans[i - 1].second, spans[i].first);
      (void)sum;
    } catch (const Error&) {
      ++rejected;
    } catch (...) {
      ++other;
      ADD_FAILURE() << "non-Error exception for header: " << header.substr(0, 300);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("mutated headers: %d parsed, %d rejected with Error, %d other, %.2f s\n", parsed, rejected, other, seconds);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(parsed + rejected, kIterations);
  // Both outcomes must actually occur, or the mutations are not exercising anything.
  EXPECT_GT(parsed, kIterations / 100);
  EXPECT_GT(rejected, kIterations / 10);
}

}  // namespace
}  // namespace shardlm
