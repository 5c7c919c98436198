// Checkpoint folders: single files, sharded indexes (and their validation), rectangle reads
// converted to f32, and the byte ranges a rectangle touches.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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
#include "common/half.h"
#include "model/checkpoint.h"
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

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<non-Error exception: ") + e.what() + ">";
  }
  return "<no error>";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "shardlm_ckpt_XXXXXX").string();
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

// A safetensors file read without the code under test: header JSON and absolute data offsets.
struct RawFile {
  std::string bytes;
  uint64_t data_start = 0;
  json header;
  std::string tensor_bytes(const std::string& name) const {
    const json& e = header.at(name);
    uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
    return bytes.substr(data_start + b, end - b);
  }
};

RawFile raw_file(const std::string& path) {
  RawFile r;
  r.bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(r.bytes[i]);
  r.header = json::parse(r.bytes.substr(8, n));
  r.data_start = 8 + n;
  return r;
}

// Decodes bytes by bit manipulation only (independent of the reader).
std::vector<float> decode(const std::string& bytes, const std::string& dtype) {
  std::vector<float> out;
  if (dtype == "F32") {
    out.resize(bytes.size() / 4);
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  } else if (dtype == "BF16") {
    for (size_t i = 0; i < bytes.size(); i += 2) {
      uint32_t bits = (static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 1])) << 24) |
                      (static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << 16);
      float f;
      std::memcpy(&f, &bits, 4);
      out.push_back(f);
    }
  } else {
    ADD_FAILURE() << "decode: no " << dtype;
  }
  return out;
}

// A tensor to write; values are chosen exactly representable in every dtype (k/8, |k| < 256).
struct Spec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

Spec make_spec(const std::string& name, DType dtype, std::vector<int64_t> shape, std::mt19937& rng) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Spec s{name, dtype, std::move(shape), {}};
  for (int64_t i = 0; i < n; ++i) s.values.push_back(static_cast<float>(static_cast<int>(rng() % 511) - 255) / 8.0f);
  return s;
}

std::string encode(const Spec& s) {
  std::string out;
  for (float v : s.values) {
    if (s.dtype == DType::kF32) {
      out.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      uint16_t h = s.dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return out;
}

void write_st(const std::string& path, const std::vector<Spec>& specs) {
  SafetensorsWriter w(path);
  for (const Spec& s : specs) w.declare(s.name, s.dtype, s.shape);
  w.begin_data();
  for (const Spec& s : specs) {
    std::string b = encode(s);
    w.append(b.data(), b.size());
  }
  w.finish();
}

// ---------------------------------------------------------------------------------------------
// Golden checkpoints

TEST(CheckpointGolden, DenseSingleFile) {
  Checkpoint c = Checkpoint::open(kData + "/dense");
  EXPECT_EQ(c.file_count(), 1);
  EXPECT_EQ(c.file_path(0), kData + "/dense/model.safetensors");
  RawFile raw = raw_file(kData + "/dense/model.safetensors");
  std::vector<std::string> expected;
  for (const auto& [name, e] : raw.header.items()) {
    if (name != "__metadata__") expected.push_back(name);
  }
  std::sort(expected.begin(), expected.end());
  ASSERT_EQ(c.names(), expected);
  ASSERT_EQ(c.names().size(), 84u);
  EXPECT_FALSE(c.has("__metadata__"));

  for (const std::string& name : expected) {
    const TensorInfo& info = c.info(name);
    EXPECT_EQ(info.shape, raw.header[name]["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(c.file_index(name), 0);
    std::vector<float> got = c.read_f32(name);
    std::vector<float> want = decode(raw.tensor_bytes(name), raw.header[name]["dtype"]);
    ASSERT_EQ(got.size(), want.size()) << name;
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << name;
    EXPECT_EQ(std::memcmp(c.raw(name), raw.bytes.data() + info.begin, info.nbytes()), 0) << name;
  }
}

TEST(CheckpointGolden, ShardedF32RoundsToDenseBf16) {
  Checkpoint dense = Checkpoint::open(kData + "/dense");
  Checkpoint sharded = Checkpoint::open(kData + "/dense-f32-sharded");
  ASSERT_EQ(sharded.file_count(), 5);
  ASSERT_EQ(sharded.names(), dense.names());
  json index = json::parse(read_file(kData + "/dense-f32-sharded/model.safetensors.index.json"));
  std::set<int> used_files;
  size_t elements = 0, exact = 0;
  for (const std::string& name : dense.names()) {
    const TensorInfo& d = dense.info(name);
    const TensorInfo& s = sharded.info(name);
    EXPECT_EQ(s.shape, d.shape) << name;
    EXPECT_EQ(s.dtype, DType::kF32) << name;
    EXPECT_EQ(d.dtype, DType::kBF16) << name;
    const int f = sharded.file_index(name);
    used_files.insert(f);
    EXPECT_EQ(fs::path(sharded.file_path(f)).filename().string(), index["weight_map"][name].get<std::string>());

    // The F32 values as stored in the shard file (read independently).
    RawFile shard = raw_file(sharded.file_path(f));
    std::vector<float> stored = decode(shard.tensor_bytes(name), "F32");
    std::vector<float> full = sharded.read_f32(name);
    ASSERT_EQ(full.size(), stored.size());
    EXPECT_EQ(std::memcmp(full.data(), stored.data(), full.size() * 4), 0) << name;

    std::vector<float> bf = dense.read_f32(name);
    ASSERT_EQ(bf.size(), full.size());
    for (size_t i = 0; i < full.size(); ++i) {
      ++elements;
      const float rounded = bf16_to_f32(f32_to_bf16(full[i]));
      if (rounded == bf[i]) ++exact;
      // Within one bf16 step of the f32 value.
      ASSERT_LE(std::fabs(full[i] - bf[i]), std::ldexp(std::fabs(full[i]), -7) + 1e-30f) << name << "[" << i << "]";
    }
  }
  EXPECT_EQ(used_files.size(), 5u);
  EXPECT_GT(elements, 3'000'000u);
  EXPECT_EQ(exact, elements);  // the BF16 checkpoint is the round-to-nearest-even of the F32 one
}

TEST(CheckpointGolden, RandomRectanglesOfGoldenTensors) {
  for (const char* model : {"dense", "dense-f32-sharded"}) {
    Checkpoint c = Checkpoint::open(kData + "/" + model);
    std::mt19937 rng(3);
    for (const char* name : {"model.language_model.embed_tokens.weight",
                             "model.language_model.layers.2.self_attn.q_proj.weight",
                             "model.language_model.layers.0.mlp.down_proj.weight"}) {
      const View2D v = c.view(name);
      const std::vector<float> whole = c.read_f32(name);
      ASSERT_EQ(static_cast<int64_t>(whole.size()), v.rows * v.cols);
      for (int k = 0; k < 30; ++k) {
        int64_t r0 = rng() % (v.rows + 1), r1 = rng() % (v.rows + 1), c0 = rng() % (v.cols + 1), c1 = rng() % (v.cols + 1);
        if (r0 > r1) std::swap(r0, r1);
        if (c0 > c1) std::swap(c0, c1);
        if (k % 3 == 0) c0 = 0, c1 = v.cols;  // whole rows
        std::vector<float> rect(static_cast<size_t>((r1 - r0) * (c1 - c0)));
        c.read_f32(name, {r0, r1}, {c0, c1}, rect.data());
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t col = c0; col < c1; ++col) {
            ASSERT_EQ(rect[(r - r0) * (c1 - c0) + (col - c0)], whole[r * v.cols + col]) << model << " " << name;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Written checkpoints

class WrittenCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(11);
    specs_ = {make_spec("bf16.matrix", DType::kBF16, {6, 10}, rng), make_spec("f16.cube", DType::kF16, {3, 4, 5}, rng),
              make_spec("f32.vector", DType::kF32, {7}, rng),       make_spec("bf16.scalar", DType::kBF16, {}, rng),
              make_spec("f32.column", DType::kF32, {2, 3, 1}, rng), make_spec("f16.empty", DType::kF16, {0, 4}, rng),
              make_spec("bf16.odd", DType::kBF16, {9, 33}, rng)};
    write_st(dir_.file("model.safetensors"), specs_);
  }
  const Spec& spec(const std::string& name) const {
    for (const Spec& s : specs_) {
      if (s.name == name) return s;
    }
    throw std::runtime_error("no spec " + name);
  }
  TempDir dir_;
  std::vector<Spec> specs_;
};

TEST_F(WrittenCheckpoint, ViewsAndWholeReads) {
  Checkpoint c = Checkpoint::open(dir_.path());
  EXPECT_EQ(c.names().size(), specs_.size());
  using P = std::pair<int64_t, int64_t>;
  auto view = [&](const std::string& n) { return P(c.view(n).rows, c.view(n).cols); };
  EXPECT_EQ(view("bf16.matrix"), P(6, 10));
  EXPECT_EQ(view("f16.cube"), P(12, 5));
  EXPECT_EQ(view("f32.vector"), P(1, 7));
  EXPECT_EQ(view("bf16.scalar"), P(1, 1));
  EXPECT_EQ(view("f32.column"), P(6, 1));
  EXPECT_EQ(view("f16.empty"), P(0, 4));
  for (const Spec& s : specs_) EXPECT_EQ(c.read_f32(s.name), s.values) << s.name;
}

TEST_F(WrittenCheckpoint, RectanglesMatchWholeReads) {
  Checkpoint c = Checkpoint::open(dir_.file("model.safetensors"));  // the file path form
  std::mt19937 rng(5);
  for (const Spec& s : specs_) {
    const View2D v = c.view(s.name);
    for (int k = 0; k < 300; ++k) {
      int64_t r0 = rng() % (v.rows + 1), r1 = rng() % (v.rows + 1), c0 = rng() % (v.cols + 1), c1 = rng() % (v.cols + 1);
      if (r0 > r1) std::swap(r0, r1);
      if (c0 > c1) std::swap(c0, c1);
      const size_t n = static_cast<size_t>((r1 - r0) * (c1 - c0));
      std::vector<float> rect(n + 1, -999.0f);  // one guard element
      c.read_f32(s.name, {r0, r1}, {c0, c1}, rect.data());
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t col = c0; col < c1; ++col) {
          ASSERT_EQ(rect[(r - r0) * (c1 - c0) + (col - c0)], s.values[r * v.cols + col])
              << s.name << " rows " << r0 << ".." << r1 << " cols " << c0 << ".." << c1;
        }
      }
      ASSERT_EQ(rect[n], -999.0f) << "wrote past the rectangle";
    }
  }
}

TEST_F(WrittenCheckpoint, BoundsAreChecked) {
  Checkpoint c = Checkpoint::open(dir_.path());
  float out[64];
  struct Bad {
    Range rows, cols;
  };
  for (Bad b : {Bad{{0, 7}, {0, 10}}, Bad{{-1, 2}, {0, 10}}, Bad{{3, 2}, {0, 10}}, Bad{{0, 1}, {0, 11}},
                Bad{{0, 1}, {-2, 3}}, Bad{{0, 1}, {5, 4}}}) {
    std::string msg = error_of([&] { c.read_f32("bf16.matrix", b.rows, b.cols, out); });
    EXPECT_TRUE(contains(msg, "'bf16.matrix'")) << msg;
    EXPECT_TRUE(contains(msg, "[6, 10]")) << msg;
    EXPECT_TRUE(contains(msg, fmt::format("rows [{}, {}) x cols [{}, {})", b.rows.begin, b.rows.end, b.cols.begin,
                                          b.cols.end)))
        << msg;
    EXPECT_TRUE(contains(error_of([&] { c.byte_ranges("bf16.matrix", b.rows, b.cols); }), "out of bounds"));
  }
  // A 1-D tensor has one row.
  EXPECT_TRUE(contains(error_of([&] { c.read_f32("f32.vector", {0, 2}, {0, 7}, out); }), "out of bounds"));
  // Empty rectangles are fine and write nothing.
  out[0] = 42.0f;
  c.read_f32("bf16.matrix", {3, 3}, {0, 10}, out);
  c.read_f32("bf16.matrix", {0, 6}, {4, 4}, out);
  c.read_f32("f16.empty", {0, 0}, {0, 4}, out);
  EXPECT_EQ(out[0], 42.0f);
  EXPECT_TRUE(c.byte_ranges("bf16.matrix", {3, 3}, {0, 10}).empty());
  // Missing tensors and files.
  std::string msg = error_of([&] { c.info("nope"); });
  EXPECT_TRUE(contains(msg, "no tensor 'nope'")) << msg;
  EXPECT_TRUE(contains(error_of([&] { c.read_f32("nope"); }), "'nope'"));
  EXPECT_TRUE(contains(error_of([&] { c.raw("nope"); }), "'nope'"));
  EXPECT_TRUE(contains(error_of([&] { c.file_path(1); }), "file index 1"));
  EXPECT_FALSE(c.has("nope"));
  EXPECT_TRUE(c.has("bf16.matrix"));
}

TEST_F(WrittenCheckpoint, ByteRangesCoverExactlyTheRectangle) {
  Checkpoint c = Checkpoint::open(dir_.path());
  const std::string file = read_file(c.file_path(0));
  std::mt19937 rng(9);
  for (const Spec& s : specs_) {
    const TensorInfo& info = c.info(s.name);
    const View2D v = c.view(s.name);
    const uint64_t esz = dtype_size(info.dtype);
    // Whole tensor: one range, exactly the tensor.
    if (v.rows * v.cols > 0) {
      auto all = c.byte_ranges(s.name, {0, v.rows}, {0, v.cols});
      ASSERT_EQ(all.size(), 1u) << s.name;
      EXPECT_EQ(all[0].begin, info.begin);
      EXPECT_EQ(all[0].end, info.end);
      EXPECT_EQ(all[0].file_index, 0);
    }
    for (int k = 0; k < 200; ++k) {
      int64_t r0 = rng() % (v.rows + 1), r1 = rng() % (v.rows + 1), c0 = rng() % (v.cols + 1), c1 = rng() % (v.cols + 1);
      if (r0 > r1) std::swap(r0, r1);
      if (c0 > c1) std::swap(c0, c1);
      if (k % 4 == 0) c0 = 0, c1 = v.cols;
      auto ranges = c.byte_ranges(s.name, {r0, r1}, {c0, c1});
      // The bytes the elements occupy, computed from the layout.
      std::set<uint64_t> want;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t col = c0; col < c1; ++col) {
          for (uint64_t b = 0; b < esz; ++b) want.insert(info.begin + (r * v.cols + col) * esz + b);
        }
      }
      std::set<uint64_t> got;
      std::string concatenated;
      for (size_t i = 0; i < ranges.size(); ++i) {
        ASSERT_LT(ranges[i].begin, ranges[i].end);
        if (i > 0) {
          ASSERT_LT(ranges[i - 1].end, ranges[i].begin) << "not sorted or not merged";
        }
        for (uint64_t b = ranges[i].begin; b < ranges[i].end; ++b) got.insert(b);
        concatenated += file.substr(ranges[i].begin, ranges[i].end - ranges[i].begin);
      }
      ASSERT_EQ(got, want) << s.name;
      const bool whole_rows = (c0 == 0 && c1 == v.cols);
      if (r1 > r0 && c1 > c0) {
        EXPECT_EQ(ranges.size(), whole_rows || r1 - r0 == 1 ? 1u : static_cast<size_t>(r1 - r0)) << s.name;
      }
      // The bytes of the ranges, in order, are the rectangle row-major.
      std::vector<float> rect(static_cast<size_t>((r1 - r0) * (c1 - c0)));
      c.read_f32(s.name, {r0, r1}, {c0, c1}, rect.data());
      ASSERT_EQ(concatenated.size(), rect.size() * esz);
      if (info.dtype != DType::kF16) {
        EXPECT_EQ(decode(concatenated, dtype_name(info.dtype)), rect) << s.name;
      }
    }
  }
}

TEST_F(WrittenCheckpoint, MovedCheckpointStillReads) {
  Checkpoint a = Checkpoint::open(dir_.path());
  Checkpoint b = std::move(a);
  EXPECT_EQ(b.read_f32("bf16.odd"), spec("bf16.odd").values);
  Checkpoint c = Checkpoint::open(kData + "/dense");
  c = std::move(b);
  EXPECT_EQ(c.read_f32("f32.vector"), spec("f32.vector").values);
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints and index validation

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(17);
    a_ = make_spec("a", DType::kBF16, {4, 8}, rng);
    b_ = make_spec("b", DType::kF32, {3, 5}, rng);
    c_ = make_spec("c", DType::kF16, {16}, rng);
    write_st(dir_.file("s1.safetensors"), {a_, c_});
    write_st(dir_.file("s2.safetensors"), {b_});
  }
  void write_index(const std::string& weight_map_json) {
    write_file(dir_.file("model.safetensors.index.json"),
               R"({"metadata": {"total_size": 1}, "weight_map": )" + weight_map_json + "}");
  }
  std::string open_error() {
    return error_of([&] { Checkpoint::open(dir_.path()); });
  }
  TempDir dir_;
  Spec a_, b_, c_;
};

TEST_F(ShardedCheckpoint, WrittenIndexOpensAndReads) {
  write_safetensors_index(dir_.path(), {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}, {"c", "s1.safetensors"}}, 200);
  for (const std::string& path : {dir_.path(), dir_.file("model.safetensors.index.json")}) {
    Checkpoint c = Checkpoint::open(path);
    EXPECT_EQ(c.file_count(), 2);
    EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(c.read_f32("a"), a_.values);
    EXPECT_EQ(c.read_f32("b"), b_.values);
    EXPECT_EQ(c.read_f32("c"), c_.values);
    EXPECT_EQ(fs::path(c.file_path(c.file_index("b"))).filename(), "s2.safetensors");
    EXPECT_EQ(c.file_index("a"), c.file_index("c"));
    auto ranges = c.byte_ranges("b", {1, 3}, {1, 2});
    ASSERT_EQ(ranges.size(), 2u);
    for (const ByteRange& r : ranges) EXPECT_EQ(r.file_index, c.file_index("b"));
    EXPECT_EQ(ranges[0].begin, c.info("b").begin + (1 * 5 + 1) * 4);
    EXPECT_EQ(ranges[0].end, ranges[0].begin + 4);
    EXPECT_EQ(ranges[1].begin, c.info("b").begin + (2 * 5 + 1) * 4);
  }
}

// A model.safetensors beside an index that does not list it is refused as ambiguous (transformers would
// read the single file, the index names other shards); one the index lists is a shard like any other.
TEST_F(ShardedCheckpoint, ASingleFileTheIndexDoesNotListIsAmbiguous) {
  std::mt19937 rng(99);
  Spec other = make_spec("a", DType::kBF16, {4, 8}, rng);
  write_st(dir_.file("model.safetensors"), {other});
  EXPECT_EQ(Checkpoint::open(dir_.path()).read_f32("a"), other.values);  // no index yet
  write_index(R"({"a": "s1.safetensors"})");
  const std::string msg = error_of([&] { Checkpoint::open(dir_.path()); });
  EXPECT_TRUE(contains(msg, "holds both model.safetensors and model.safetensors.index.json")) << msg;
  write_index(R"({"a": "model.safetensors"})");
  Checkpoint c = Checkpoint::open(dir_.path());
  EXPECT_EQ(c.read_f32("a"), other.values);
  EXPECT_EQ(c.names(), std::vector<std::string>{"a"});  // only what the index lists
}

// A tensor of a dtype shardlm does not read (a vision tower's I64 buffer) is listed, its bytes
// checked, and refused only when read.
TEST_F(ShardedCheckpoint, TensorsOfUnreadDtypesAreListedButNotRead) {
  const std::string path = dir_.file("buffers.safetensors");
  {
    const std::string header = R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                               R"("w":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})";
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(16, '\1');
    const float w[2] = {1.5f, -2.0f};
    out.write(reinterpret_cast<const char*>(w), sizeof(w));
  }
  Checkpoint c = Checkpoint::open(path);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"ids", "w"}));
  EXPECT_EQ(c.info("ids").dtype_label(), "I64");
  EXPECT_EQ(c.info("ids").nbytes(), 16u);
  EXPECT_EQ(c.read_f32("w"), (std::vector<float>{1.5f, -2.0f}));
  const std::string msg = error_of([&] { c.read_f32("ids"); });
  EXPECT_TRUE(contains(msg, "tensor 'ids' is stored as I64 (shardlm reads F32, F16 and BF16)")) << msg;
  EXPECT_TRUE(contains(error_of([&] { c.raw("ids"); }), "stored as I64"));
}

TEST_F(ShardedCheckpoint, RejectsBadIndexes) {
  struct Case {
    const char* what;
    std::string weight_map;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"missing shard", R"({"a": "s1.safetensors", "b": "s9.safetensors"})", {"shard 's9.safetensors' does not exist"}},
      {"parent escape", R"({"a": "../s1.safetensors"})", {"'../s1.safetensors'", "not a plain file name"}},
      {"dotdot inside", R"({"a": "x/../s1.safetensors"})", {"not a plain file name"}},
      {"subfolder", R"({"a": "sub/s1.safetensors"})", {"not a plain file name"}},
      {"absolute", R"({"a": "/etc/passwd"})", {"not a plain file name"}},
      {"dot", R"({"a": "."})", {"not a plain file name"}},
      {"empty name", R"({"a": ""})", {"not a plain file name"}},
      {"not in shard", R"({"a": "s2.safetensors"})", {"tensor 'a' is listed in shard 's2.safetensors'", "does not contain"}},
      {"duplicate", R"({"a": "s1.safetensors", "a": "s2.safetensors"})", {"'a' appears twice"}},
      {"value not string", R"({"a": 1})", {"tensor 'a'", "not a shard file name"}},
      {"empty map", R"({})", {"lists no tensors"}},
      {"map not object", R"(["a"])", {"no 'weight_map' object"}},
  };
  for (const Case& c : cases) {
    write_index(c.weight_map);
    std::string msg = open_error();
    EXPECT_TRUE(contains(msg, "model.safetensors.index.json")) << c.what << ": " << msg;
    for (const std::string& p : c.parts) EXPECT_TRUE(contains(msg, p)) << c.what << ": " << msg;
  }
  write_file(dir_.file("model.safetensors.index.json"), R"({"metadata": {}})");
  EXPECT_TRUE(contains(open_error(), "no 'weight_map' object"));
  write_file(dir_.file("model.safetensors.index.json"), R"({"weight_map": {"a": "s1.safetensors"}, "metadata": 5})");
  EXPECT_TRUE(contains(open_error(), "'metadata' is not an object"));
  write_file(dir_.file("model.safetensors.index.json"), R"({"weight_map": )");
  EXPECT_TRUE(contains(open_error(), "not valid JSON"));
  write_file(dir_.file("model.safetensors.index.json"), "[]");
  EXPECT_TRUE(contains(open_error(), "not an object"));

  // A tensor stored in two shard files, listed or not.
  std::mt19937 rng(1);
  write_st(dir_.file("s3.safetensors"), {make_spec("a", DType::kF32, {2}, rng), make_spec("d", DType::kF32, {2}, rng)});
  write_index(R"({"a": "s1.safetensors", "d": "s3.safetensors"})");
  std::string msg = open_error();
  EXPECT_TRUE(contains(msg, "tensor 'a' is stored in two shards")) << msg;
  EXPECT_TRUE(contains(msg, "s1.safetensors") && contains(msg, "s3.safetensors")) << msg;

  // A shard with a broken header: the error names that file.
  write_file(dir_.file("s4.safetensors"), std::string("\x05\0\0\0\0\0\0\0{\"x\":", 13));
  write_index(R"({"a": "s1.safetensors", "x": "s4.safetensors"})");
  msg = open_error();
  EXPECT_TRUE(contains(msg, "s4.safetensors")) << msg;
  EXPECT_TRUE(contains(msg, "not valid JSON")) << msg;

  // Rejected in the writer too.
  EXPECT_TRUE(contains(error_of([&] { write_safetensors_index(dir_.path(), {{"a", "../s1.safetensors"}}, 0); }),
                       "not a plain file name"));
}

TEST(CheckpointOpen, PathForms) {
  TempDir dir;
  EXPECT_TRUE(contains(error_of([&] { Checkpoint::open(dir.path()); }), "neither model.safetensors"));
  EXPECT_TRUE(contains(error_of([&] { Checkpoint::open(dir.file("missing")); }), "no such checkpoint"));
  write_file(dir.file("junk.safetensors"), "abc");
  std::string msg = error_of([&] { Checkpoint::open(dir.file("junk.safetensors")); });
  EXPECT_TRUE(contains(msg, "junk.safetensors")) << msg;
  EXPECT_TRUE(contains(msg, "shorter than the 8-byte")) << msg;
}

// Whole-row BF16 reads are one contiguous conversion; it should run at memory speed.
TEST(CheckpointSpeed, WholeRowBf16Conversion) {
  TempDir dir;
  const int64_t rows = 4096, cols = 4096;  // 32 MiB of BF16
  {
    SafetensorsWriter w(dir.file("model.safetensors"));
    w.declare("big", DType::kBF16, {rows, cols});
    w.begin_data();
    std::vector<uint16_t> row(cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) row[c] = f32_to_bf16(static_cast<float>((r * 7 + c) % 256) / 8.0f);
      w.append(row.data(), row.size() * 2);
    }
    w.finish();
  }
  Checkpoint c = Checkpoint::open(dir.path());
  std::vector<float> out(static_cast<size_t>(rows * cols));
  c.read_f32("big", {0, rows}, {0, cols}, out.data());  // fault the pages in
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    c.read_f32("big", {0, rows}, {0, cols}, out.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  // Half the columns: one conversion per row.
  std::vector<float> half(static_cast<size_t>(rows * cols / 2));
  c.read_f32("big", {0, rows}, {cols / 2, cols}, half.data());
  auto t0 = std::chrono::steady_clock::now();
  c.read_f32("big", {0, rows}, {cols / 2, cols}, half.data());
  const double half_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double gbs = static_cast<double>(rows * cols * 2) / best / 1e9;
  std::printf("BF16 -> f32 whole rows: %.1f GB/s read (%.1f GB/s written); half-width rectangle: %.1f GB/s read\n", gbs,
              gbs * 2, static_cast<double>(rows * cols) / half_s / 1e9);
  for (int64_t r = 0; r < rows; r += 511) {
    for (int64_t col = 0; col < cols; col += 97) {
      ASSERT_EQ(out[r * cols + col], static_cast<float>((r * 7 + col) % 256) / 8.0f);
      if (col >= cols / 2) {
        ASSERT_EQ(half[r * (cols / 2) + col - cols / 2], out[r * cols + col]);
      }
    }
  }
  EXPECT_GT(gbs, 1.0) << "BF16 conversion far below memory speed";
}

// The vectorised rounding of synthetic values to bf16 equals the scalar conversion on every kind of
// value: ties (even and odd kept bit), carries into the exponent, subnormals, infinities, NaNs, and a
// length that is not a multiple of the vector width.
TEST(Bf16Rounding, VectorEqualsScalar) {
  std::vector<uint32_t> patterns = {0x00000000u, 0x80000000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f7fffffu,
                                    0x7f7fffffu, 0xff7fffffu, 0x00008000u, 0x00018000u, 0x7f800000u, 0xff800000u,
                                    0x7fc00000u, 0x7f800001u, 0xff800123u, 0x3f800001u, 0xbf808000u};
  std::mt19937 rng(17);
  for (int i = 0; i < 1000; ++i) patterns.push_back(static_cast<uint32_t>(rng()));
  std::vector<float> v(patterns.size());
  std::memcpy(v.data(), patterns.data(), patterns.size() * 4);
  std::vector<float> got = v;
  round_to_bf16(got.data(), got.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const float want = bf16_to_f32(f32_to_bf16(v[i]));
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want, 4);
    ASSERT_EQ(a, b) << "input bits 0x" << std::hex << patterns[i];
  }
}

}  // namespace
}  // namespace shardlm
