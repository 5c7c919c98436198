#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/error.h"
#include "common/half.h"
#include "model/foreign_file.h"
#include "model/generator.h"
#include "model/tensor_names.h"
#include "model/variants.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
constexpr uintmax_t kMaxIndexBytes = 256ull << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shown(const std::string& s) { return s.size() <= 160 ? s : s.substr(0, 160) + "..."; }

// BF16 -> f32 is a 16-bit shift; SSE2 (the x86-64 baseline) does 8 values per step.
void bf16_to_f32_run(const uint8_t* src, size_t n, float* out) {
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  for (; i + 16 <= n; i += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i + 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_unpacklo_epi16(zero, a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 4), _mm_unpackhi_epi16(zero, a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 8), _mm_unpacklo_epi16(zero, b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 12), _mm_unpackhi_epi16(zero, b));
  }
#endif
  for (; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, src + 2 * i, 2);
    out[i] = bf16_to_f32(v);
  }
}

void f16_to_f32_run(const uint8_t* src, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, src + 2 * i, 2);
    out[i] = f16_to_f32(v);
  }
}

// Converts n consecutive elements of dtype at src into f32.
void to_f32(DType dtype, const uint8_t* src, size_t n, float* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, src, n * sizeof(float)); return;
    case DType::kBF16: bf16_to_f32_run(src, n, out); return;
    case DType::kF16: f16_to_f32_run(src, n, out); return;
  }
}

// JSON with duplicate keys rejected: in an index a repeated tensor name would silently map it to
// only one of its shards.
json parse_json_no_duplicates(const std::string& text, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;
  auto check = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (open_objects.empty() || !open_objects.back().insert(key).second) {
        fail("{}: key '{}' appears twice in one object (a tensor may be in one shard only)", path, shown(key));
      }
    }
    return true;
  };
  try {
    return json::parse(text, check);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

std::string read_small_file(const std::string& path) {
  std::error_code ec;
  uintmax_t size = fs::file_size(path, ec);
  if (ec) fail("{}: cannot read: {}", path, ec.message());
  if (size > kMaxIndexBytes) fail("{}: {} bytes is too large for an index", path, size);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) fail("{}: read failed", path);
  std::string text = ss.str();
  check_not_foreign_text(text, path);
  return text;
}

}  // namespace

struct Checkpoint::Impl {
  struct Entry {
    int file = 0;
    const TensorInfo* info = nullptr;  // node of files[file]->tensors(): stable for the object's life
  };
  std::string path;
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::vector<std::string> file_paths;
  std::map<std::string, Entry> tensors;
  // Synthetic checkpoints (file -1 in every entry): the tensors and how their values are made.
  struct Synthetic {
    ModelConfig config;
    uint64_t seed = 1;
    DType dtype = DType::kBF16;
    std::map<std::string, TensorInfo> infos;
  };
  std::unique_ptr<Synthetic> synthetic;

  int add_file(const std::string& file_path) {
    files.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(file_path)));
    file_paths.push_back(file_path);
    return static_cast<int>(files.size()) - 1;
  }

  void open_single(const std::string& file_path) {
    int f = add_file(file_path);
    for (const auto& [name, info] : files[f]->tensors()) tensors[name] = Entry{f, &info};
  }

  void open_index(const std::string& index_path, const std::string& dir) {
    json doc = parse_json_no_duplicates(read_small_file(index_path), index_path);
    if (!doc.is_object()) fail("{}: index is a JSON {}, not an object", index_path, doc.type_name());
    if (!doc.contains("weight_map") || !doc["weight_map"].is_object()) {
      fail("{}: index has no 'weight_map' object", index_path);
    }
    if (doc.contains("metadata") && !doc["metadata"].is_object()) {
      fail("{}: index 'metadata' is not an object", index_path);
    }
    const json& weight_map = doc["weight_map"];
    if (weight_map.empty()) fail("{}: index 'weight_map' lists no tensors", index_path);

    // Shard file names, validated, in sorted order (file indices follow that order).
    std::map<std::string, int> shard_index;
    for (const auto& item : weight_map.items()) {
      if (!item.value().is_string()) {
        fail("{}: weight_map entry for tensor '{}' is a JSON {}, not a shard file name", index_path,
             shown(item.key()), item.value().type_name());
      }
      const std::string& shard = item.value().get_ref<const std::string&>();
      if (shard.empty() || shard == "." || shard.find('/') != std::string::npos ||
          shard.find('\\') != std::string::npos || shard.find("..") != std::string::npos ||
          shard.find('\0') != std::string::npos) {
        fail("{}: tensor '{}' maps to shard '{}', which is not a plain file name inside the folder", index_path,
             shown(item.key()), shown(shard));
      }
      shard_index.emplace(shard, -1);
    }
    for (auto& [shard, index] : shard_index) {
      const std::string shard_path = dir + "/" + shard;
      std::error_code ec;
      if (!fs::is_regular_file(shard_path, ec)) {
        fail("{}: shard '{}' does not exist (or is not a file) in {}", index_path, shard, dir);
      }
      index = add_file(shard_path);
    }

    // A tensor name stored in two shard files is ambiguous, listed or not.
    std::map<std::string, int> holder;
    for (size_t f = 0; f < files.size(); ++f) {
      for (const auto& [name, info] : files[f]->tensors()) {
        auto [it, inserted] = holder.emplace(name, static_cast<int>(f));
        if (!inserted) {
          fail("{}: tensor '{}' is stored in two shards, {} and {}", index_path, shown(name),
               fs::path(file_paths[it->second]).filename().string(), fs::path(file_paths[f]).filename().string());
        }
      }
    }
    for (const auto& item : weight_map.items()) {
      const std::string& name = item.key();
      const std::string& shard = item.value().get_ref<const std::string&>();
      const int f = shard_index.at(shard);
      auto it = files[f]->tensors().find(name);
      if (it == files[f]->tensors().end()) {
        fail("{}: tensor '{}' is listed in shard '{}', but that file does not contain it", index_path, shown(name),
             shard);
      }
      tensors[name] = Entry{f, &it->second};
    }
  }

  const Entry& entry(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail("{}: checkpoint has no tensor '{}'", path, shown(name));
    return it->second;
  }

  // An entry whose bytes are about to be read: of a dtype shardlm reads.
  const Entry& readable(const std::string& name) const {
    const Entry& e = entry(name);
    if (!e.info->unsupported_dtype.empty()) {
      fail("{}: tensor '{}' is stored as {} (shardlm reads F32, F16 and BF16)", path, shown(name), e.info->unsupported_dtype);
    }
    return e;
  }

  View2D view_of(const TensorInfo& t) const {
    View2D v{1, 1};
    if (t.shape.empty()) return v;
    v.cols = t.shape.back();
    bool overflow = false;
    for (size_t i = 0; i + 1 < t.shape.size(); ++i) {
      if (__builtin_mul_overflow(v.rows, t.shape[i], &v.rows)) overflow = true;
    }
    if (std::find(t.shape.begin(), t.shape.end() - 1, 0) != t.shape.end() - 1) {
      v.rows = 0;
    } else if (overflow) {
      fail("{}: tensor '{}' has too many rows to view as 2-D", path, shown(t.name));
    }
    return v;
  }

  void check_rect(const TensorInfo& t, View2D v, Range rows, Range cols) const {
    if (rows.begin < 0 || rows.begin > rows.end || rows.end > v.rows || cols.begin < 0 || cols.begin > cols.end ||
        cols.end > v.cols) {
      fail("{}: tensor '{}' viewed as [{}, {}]: rows [{}, {}) x cols [{}, {}) is out of bounds", path, shown(t.name),
           v.rows, v.cols, rows.begin, rows.end, cols.begin, cols.end);
    }
  }
};

Checkpoint::Checkpoint() : impl_(std::make_unique<Impl>()) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  c.impl_->path = path;
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail("{}: no such checkpoint file or folder", path);
  if (fs::is_directory(st)) {
    const std::string index = path + "/" + kIndexName;
    const std::string single = path + "/" + kSingleName;
    if (fs::exists(index, ec)) {
      c.impl_->open_index(index, path);
      // A model.safetensors the index does not list (a stale download beside the shards): Hugging Face
      // transformers would read it, this loader the shards, so which weights the folder holds is unclear.
      if (fs::exists(single, ec) &&
          std::none_of(c.impl_->file_paths.begin(), c.impl_->file_paths.end(),
                       [](const std::string& p) { return fs::path(p).filename() == kSingleName; })) {
        fail("{}: holds both {} and {}, which does not list it: which one holds the weights is ambiguous (Hugging Face "
             "transformers reads {}); remove the stale one",
             path, kSingleName, kIndexName, kSingleName);
      }
    } else if (fs::exists(single, ec)) {
      c.impl_->open_single(single);
    } else {
      fail("{}: folder has neither {} nor {}", path, kSingleName, kIndexName);
    }
  } else if (fs::is_regular_file(st)) {
    if (ends_with(path, ".index.json")) {
      std::string dir = fs::path(path).parent_path().string();
      c.impl_->open_index(path, dir.empty() ? "." : dir);
    } else {
      c.impl_->open_single(path);
    }
  } else {
    fail("{}: not a file or folder", path);
  }
  return c;
}

Checkpoint Checkpoint::synthetic(const ModelConfig& config, uint64_t seed, DType dtype) {
  Checkpoint c;
  c.impl_->path = "synthetic:" + describe_variant(config);
  auto syn = std::make_unique<Impl::Synthetic>();
  syn->config = config;
  syn->seed = seed;
  syn->dtype = dtype;
  for (const ExpectedTensor& t : expected_tensors(config)) {
    TensorInfo info;
    info.name = t.name;
    info.dtype = dtype;
    info.shape = t.shape;
    info.begin = 0;
    info.end = static_cast<uint64_t>(info.numel()) * dtype_size(dtype);
    auto [it, inserted] = syn->infos.emplace(t.name, std::move(info));
    c.impl_->tensors[t.name] = Impl::Entry{-1, &it->second};
  }
  c.impl_->synthetic = std::move(syn);
  return c;
}

bool Checkpoint::is_synthetic() const { return impl_->synthetic != nullptr; }

const std::string& Checkpoint::path() const { return impl_->path; }
bool Checkpoint::has(const std::string& name) const { return impl_->tensors.count(name) > 0; }
const TensorInfo& Checkpoint::info(const std::string& name) const { return *impl_->entry(name).info; }

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->tensors.size());
  for (const auto& [name, e] : impl_->tensors) out.push_back(name);
  return out;
}

int Checkpoint::file_count() const { return static_cast<int>(impl_->files.size()); }

const std::string& Checkpoint::file_path(int file_index) const {
  if (file_index < 0 || file_index >= file_count()) {
    fail("{}: file index {} outside [0, {})", impl_->path, file_index, file_count());
  }
  return impl_->file_paths[file_index];
}

View2D Checkpoint::view(const std::string& name) const { return impl_->view_of(info(name)); }

void Checkpoint::read_f32(const std::string& name, Range rows, Range cols, float* out) const {
  const Impl::Entry& e = impl_->readable(name);
  const TensorInfo& t = *e.info;
  const View2D v = impl_->view_of(t);
  impl_->check_rect(t, v, rows, cols);
  if (rows.size() == 0 || cols.size() == 0) return;
  if (e.file < 0) {
    const Impl::Synthetic& syn = *impl_->synthetic;
    const TensorInit init = tensor_init(syn.config, name, t.shape);
    const size_t width = static_cast<size_t>(cols.size());
#pragma omp parallel for schedule(static) if (rows.size() * cols.size() > (1 << 16))
    for (int64_t r = rows.begin; r < rows.end; ++r) {
      float* row = out + static_cast<size_t>(r - rows.begin) * width;
      generated_values(syn.seed, name, init, r * v.cols + cols.begin, cols.size(), row);
      // Rounded to the storage dtype, exactly as a written checkpoint holds them.
      if (syn.dtype == DType::kBF16) round_to_bf16(row, width);
      if (syn.dtype == DType::kF16) {
        for (size_t i = 0; i < width; ++i) row[i] = f16_to_f32(f32_to_f16(row[i]));
      }
    }
    return;
  }
  const size_t esz = dtype_size(t.dtype);
  const uint8_t* base = impl_->files[e.file]->data(t);
  if (cols.begin == 0 && cols.end == v.cols) {  // whole rows: one contiguous run
    to_f32(t.dtype, base + static_cast<size_t>(rows.begin * v.cols) * esz, static_cast<size_t>(rows.size() * v.cols),
           out);
    return;
  }
  const size_t width = static_cast<size_t>(cols.size());
  for (int64_t r = rows.begin; r < rows.end; ++r) {
    to_f32(t.dtype, base + static_cast<size_t>(r * v.cols + cols.begin) * esz, width, out);
    out += width;
  }
}

std::vector<float> Checkpoint::read_f32(const std::string& name) const {
  const TensorInfo& t = info(name);
  const View2D v = impl_->view_of(t);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  read_f32(name, {0, v.rows}, {0, v.cols}, out.data());
  return out;
}

std::vector<ByteRange> Checkpoint::byte_ranges(const std::string& name, Range rows, Range cols) const {
  const Impl::Entry& e = impl_->readable(name);
  if (e.file < 0) fail("{}: a synthetic checkpoint has no files to read tensor '{}' from", impl_->path, name);
  const TensorInfo& t = *e.info;
  const View2D v = impl_->view_of(t);
  impl_->check_rect(t, v, rows, cols);
  std::vector<ByteRange> out;
  if (rows.size() == 0 || cols.size() == 0) return out;
  const uint64_t esz = dtype_size(t.dtype);
  const uint64_t row_bytes = static_cast<uint64_t>(v.cols) * esz;
  const uint64_t seg_bytes = static_cast<uint64_t>(cols.size()) * esz;
  if (cols.begin == 0 && cols.end == v.cols) {  // whole rows are one contiguous range
    const uint64_t begin = t.begin + static_cast<uint64_t>(rows.begin) * row_bytes;
    out.push_back(ByteRange{e.file, begin, begin + static_cast<uint64_t>(rows.size()) * row_bytes});
    return out;
  }
  for (int64_t r = rows.begin; r < rows.end; ++r) {
    const uint64_t begin = t.begin + static_cast<uint64_t>(r) * row_bytes + static_cast<uint64_t>(cols.begin) * esz;
    if (!out.empty() && out.back().end == begin) {
      out.back().end = begin + seg_bytes;
    } else {
      out.push_back(ByteRange{e.file, begin, begin + seg_bytes});
    }
  }
  return out;
}

const uint8_t* Checkpoint::raw(const std::string& name) const {
  const Impl::Entry& e = impl_->readable(name);
  if (e.file < 0) fail("{}: a synthetic checkpoint has no bytes for tensor '{}'", impl_->path, name);
  return impl_->files[e.file]->data(*e.info);
}

int Checkpoint::file_index(const std::string& name) const {
  const Impl::Entry& e = impl_->entry(name);
  if (e.file < 0) fail("{}: a synthetic checkpoint has no file holding tensor '{}'", impl_->path, name);
  return e.file;
}

}  // namespace shardlm
