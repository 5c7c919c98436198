#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/foreign_file.h"

namespace shardlm {
namespace {

using json = nlohmann::json;

constexpr int kMaxJsonDepth = 3;  // root object > tensor entry > shape / data_offsets array
constexpr size_t kMaxRank = 32;
constexpr size_t kShownNameChars = 160;
constexpr size_t kWriteBufferBytes = 4u << 20;

// A name as it appears in an error message (cut short: names come from untrusted headers).
std::string shown(const std::string& s) {
  if (s.size() <= kShownNameChars) return s;
  return s.substr(0, kShownNameChars) + "...";
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses JSON text, rejecting duplicate keys (which parsers resolve differently) and nesting
// deeper than a safetensors header can have.
json parse_header_json(const char* first, const char* last, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) fail("{}: header JSON is nested deeper than a safetensors header can be", path);
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (open_objects.empty() || !open_objects.back().insert(key).second) {
          fail("{}: header JSON has the key '{}' twice in one object", path, shown(key));
        }
        break;
      }
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(first, last, check, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", path, e.what());
  }
}

// A JSON integer >= 0 (floats, booleans and negative numbers are rejected).
bool json_to_u64(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

// Validates one tensor entry; offsets in the result are absolute file offsets.
TensorInfo parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_start, uint64_t data_len,
                              const std::string& path) {
  const std::string who = fmt::format("{}: tensor '{}'", path, shown(name));
  if (name.empty()) fail("{}: header has a tensor with an empty name", path);
  if (!entry.is_object()) fail("{}: entry is not a JSON object", who);
  for (const auto& item : entry.items()) {
    const std::string& key = item.key();
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail("{}: unknown key '{}' (expected dtype, shape, data_offsets)", who, shown(key));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) fail("{}: missing '{}'", who, key);
  }

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail("{}: 'dtype' is not a string", who);
  const std::string dtype_text = dtype.get<std::string>();
  const int other_bits = unsupported_dtype_bits(dtype_text);
  if (other_bits > 0) {
    info.unsupported_dtype = dtype_text;  // listed and checked; reading it fails (Checkpoint)
  } else {
    try {
      info.dtype = parse_dtype(dtype_text);
    } catch (const Error& e) {
      fail("{}: {}", who, e.what());
    }
  }

  const json& shape = entry["shape"];
  if (!shape.is_array()) fail("{}: 'shape' is not an array", who);
  if (shape.size() > kMaxRank) fail("{}: shape has {} dimensions (at most {} supported)", who, shape.size(), kMaxRank);
  int64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    uint64_t dim = 0;
    if (!json_to_u64(shape[i], dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail("{}: shape dimension {} is {}, not a non-negative 64-bit integer", who, i, shown(shape[i].dump()));
    }
    info.shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(dim), &numel)) overflow = true;
  }
  // A zero dimension makes the tensor empty even when a partial product overflowed.
  if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end()) {
    numel = 0;
  } else if (overflow) {
    fail("{}: shape {} has more elements than fit in 64 bits", who, shape_text(info.shape));
  }
  // Bytes: elements x bits / 8, rounded up for the packed types of fewer than 8 bits.
  const uint64_t bits = other_bits > 0 ? static_cast<uint64_t>(other_bits) : 8 * dtype_size(info.dtype);
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), bits, &nbytes) || nbytes > UINT64_MAX - 7) {
    fail("{}: shape {} of {} is more bytes than fit in 64 bits", who, shape_text(info.shape), info.dtype_label());
  }
  nbytes = (nbytes + 7) / 8;

  const json& offsets = entry["data_offsets"];
  uint64_t begin = 0, end = 0;
  if (!offsets.is_array() || offsets.size() != 2 || !json_to_u64(offsets[0], begin) || !json_to_u64(offsets[1], end)) {
    fail("{}: 'data_offsets' is {}, not [begin, end] with non-negative integers", who, shown(offsets.dump()));
  }
  if (begin > end) fail("{}: data_offsets [{}, {}] end before they begin", who, begin, end);
  if (end > data_len) {
    fail("{}: data_offsets [{}, {}] run past the end of the data section ({} bytes)", who, begin, end, data_len);
  }
  if (end - begin != nbytes) {
    fail("{}: data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", who, begin, end, end - begin,
         info.dtype_label(), shape_text(info.shape), nbytes);
  }
  info.begin = data_start + begin;
  info.end = data_start + end;
  return info;
}

void check_no_overlap(const std::map<std::string, TensorInfo>& tensors, uint64_t data_start, const std::string& path) {
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (t.end > t.begin) order.push_back(&t);  // empty tensors occupy no bytes
  }
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const TensorInfo* reach = nullptr;  // the tensor ending furthest so far
  for (const TensorInfo* t : order) {
    if (reach && t->begin < reach->end) {
      fail("{}: tensors '{}' (data_offsets [{}, {}]) and '{}' (data_offsets [{}, {}]) overlap", path,
           shown(reach->name), reach->begin - data_start, reach->end - data_start, shown(t->name),
           t->begin - data_start, t->end - data_start);
    }
    if (!reach || t->end > reach->end) reach = t;
  }
}

// Writes all of [p, p + n) to fd; throws Error naming `path` on failure.
void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", path, std::strerror(errno));
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
}

int create_for_writing(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot create: {}", path, std::strerror(errno));
  return fd;
}

// fsyncs, closes and renames tmp over path.
void commit_file(int fd, const std::string& tmp, const std::string& path) {
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    fail("{}: fsync failed: {}", tmp, std::strerror(err));
  }
  if (::close(fd) != 0) fail("{}: close failed: {}", tmp, std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("{}: cannot rename to {}: {}", tmp, path, std::strerror(errno));
}

void check_plain_file_name(const std::string& name, const std::string& what) {
  if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos ||
      name.find('\0') != std::string::npos) {
    fail("{} '{}' is not a plain file name (no '/', no '..')", what, shown(name));
  }
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
  }
  return 0;
}

int unsupported_dtype_bits(const std::string& name) {
  static const std::array<std::pair<const char*, int>, 17> kOther = {{{"BOOL", 8},    {"U8", 8},       {"I8", 8},
                                                                      {"I16", 16},    {"U16", 16},     {"I32", 32},
                                                                      {"U32", 32},    {"I64", 64},     {"U64", 64},
                                                                      {"F64", 64},    {"F8_E5M2", 8},  {"F8_E4M3", 8},
                                                                      {"F8_E8M0", 8}, {"F6_E2M3", 6},  {"F6_E3M2", 6},
                                                                      {"F4", 4},      {"C64", 64}}};
  for (const auto& [other, bits] : kOther) {
    if (name == other) return bits;
  }
  return 0;
}

DType parse_dtype(const std::string& name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  if (unsupported_dtype_bits(name) > 0) fail("unsupported dtype '{}' (shardlm reads F32, F16 and BF16)", name);
  fail("unknown dtype '{}' (not a safetensors dtype; shardlm reads F32, F16 and BF16)", shown(name));
}

int64_t TensorInfo::numel() const {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) fail("tensor '{}': invalid shape {}", shown(name), shape_text(shape));
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reading

SafetensorsHeader SafetensorsFile::parse_header_full(const uint8_t* data, size_t size, uint64_t file_size,
                                                     const std::string& path) {
  if (file_size < 8 || size < 8) {
    fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path, std::min<uint64_t>(size, file_size));
  }
  SafetensorsHeader h;
  h.header_len = read_u64_le(data);
  if (h.header_len > kMaxSafetensorsHeaderBytes) {
    fail("{}: header length {} exceeds the limit of {} bytes", path, h.header_len, kMaxSafetensorsHeaderBytes);
  }
  if (h.header_len > file_size - 8) {
    fail("{}: header length {} runs past the end of the file ({} bytes)", path, h.header_len, file_size);
  }
  if (h.header_len > size - 8) {
    fail("{}: header length {} runs past the {} bytes given", path, h.header_len, size);
  }
  const char* text = reinterpret_cast<const char*>(data + 8);
  json doc = parse_header_json(text, text + h.header_len, path);
  if (!doc.is_object()) fail("{}: header is a JSON {}, not an object", path, doc.type_name());

  const uint64_t data_start = 8 + h.header_len;
  const uint64_t data_len = file_size - data_start;
  for (const auto& item : doc.items()) {
    const std::string& name = item.key();
    const json& value = item.value();
    if (name == "__metadata__") {
      if (!value.is_object()) fail("{}: __metadata__ is a JSON {}, not an object", path, value.type_name());
      for (const auto& m : value.items()) {
        if (!m.value().is_string()) {
          fail("{}: __metadata__ entry '{}' is a JSON {}, not a string", path, shown(m.key()), m.value().type_name());
        }
        h.metadata.emplace(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    h.tensors.emplace(name, parse_tensor_entry(name, value, data_start, data_len, path));
  }
  check_no_overlap(h.tensors, data_start, path);
  return h;
}

std::map<std::string, TensorInfo> SafetensorsFile::parse_header(const uint8_t* data, size_t size, uint64_t file_size,
                                                                const std::string& path_for_errors) {
  return parse_header_full(data, size, file_size, path_for_errors).tensors;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang; it is then rejected as not a regular file.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path, size);
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail("{}: mmap of {} bytes failed: {}", path, size, std::strerror(map_err));

  SafetensorsFile f;  // owns the mapping from here on, also if the header is rejected
  f.path_ = path;
  f.base_ = static_cast<const uint8_t*>(p);
  f.size_ = size;
  const std::string kind = foreign_file_kind(std::string_view(reinterpret_cast<const char*>(f.base_), std::min<uint64_t>(size, 64)));
  if (!kind.empty()) fail("{} {}", path, kind);
  SafetensorsHeader h = parse_header_full(f.base_, f.size_, f.size_, path);
  f.tensors_ = std::move(h.tensors);
  f.metadata_ = std::move(h.metadata);
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      tensors_(std::move(o.tensors_)),
      metadata_(std::move(o.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
    path_ = std::move(o.path_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

// ---------------------------------------------------------------------------------------------
// Writing

struct SafetensorsWriter::Impl {
  enum class State { kDeclaring, kData, kFinished };
  std::string path;
  std::string tmp_path;
  std::vector<TensorInfo> declared;  // offsets relative to the data section
  std::set<std::string> names;
  uint64_t total = 0;
  uint64_t written = 0;
  int fd = -1;
  State state = State::kDeclaring;
  std::vector<char> buffer;

  void flush() {
    if (!buffer.empty()) write_all(fd, buffer.data(), buffer.size(), tmp_path);
    buffer.clear();
  }
};

SafetensorsWriter::SafetensorsWriter(std::string path) : impl_(new Impl) {
  impl_->path = std::move(path);
  impl_->tmp_path = impl_->path + ".tmp";
}

SafetensorsWriter::~SafetensorsWriter() {
  if (impl_->fd >= 0) {  // not finished: drop the partial file
    ::close(impl_->fd);
    ::unlink(impl_->tmp_path.c_str());
  }
  delete impl_;
}

void SafetensorsWriter::declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  Impl& w = *impl_;
  if (w.state != Impl::State::kDeclaring) fail("{}: tensor '{}' declared after begin_data", w.path, shown(name));
  if (name.empty() || name == "__metadata__") fail("{}: '{}' is not a valid tensor name", w.path, name);
  if (w.names.count(name)) fail("{}: tensor '{}' declared twice", w.path, shown(name));
  TensorInfo t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  if (shape.size() > kMaxRank) fail("{}: tensor '{}' has {} dimensions (at most {})", w.path, name, shape.size(), kMaxRank);
  for (int64_t d : shape) {
    if (d < 0) fail("{}: tensor '{}' has a negative dimension in {}", w.path, name, shape_text(shape));
  }
  uint64_t nbytes = 0, end = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(t.numel()), static_cast<uint64_t>(dtype_size(dtype)), &nbytes) ||
      __builtin_add_overflow(w.total, nbytes, &end)) {
    fail("{}: tensor '{}' {} is too large", w.path, name, shape_text(shape));
  }
  t.begin = w.total;
  t.end = end;
  w.total = end;
  w.names.insert(name);
  w.declared.push_back(std::move(t));
}

void SafetensorsWriter::begin_data(const std::map<std::string, std::string>& metadata) {
  Impl& w = *impl_;
  if (w.state != Impl::State::kDeclaring) fail("{}: begin_data called twice", w.path);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  for (const TensorInfo& t : w.declared) {
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = dtype_name(t.dtype);
    entry["shape"] = t.shape;
    entry["data_offsets"] = nlohmann::ordered_json::array({t.begin, t.end});
    header[t.name] = std::move(entry);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: cannot encode the header (tensor names and metadata must be UTF-8): {}", w.path, e.what());
  }
  // Like the reference writer, pad with spaces so the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeaderBytes) fail("{}: header of {} bytes is too large", w.path, text.size());

  w.fd = create_for_writing(w.tmp_path);
  w.state = Impl::State::kData;
  w.buffer.reserve(kWriteBufferBytes);
  uint8_t prefix[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(n >> (8 * i));
  w.buffer.insert(w.buffer.end(), prefix, prefix + 8);
  w.buffer.insert(w.buffer.end(), text.begin(), text.end());
}

void SafetensorsWriter::append(const void* bytes, size_t n) {
  Impl& w = *impl_;
  if (w.state != Impl::State::kData) fail("{}: append outside begin_data .. finish", w.path);
  if (n > w.total - w.written) {
    fail("{}: appending {} bytes would exceed the {} declared data bytes ({} already written)", w.path, n, w.total,
         w.written);
  }
  if (n == 0) return;
  if (w.buffer.size() + n > kWriteBufferBytes) w.flush();
  if (n >= kWriteBufferBytes) {
    write_all(w.fd, bytes, n, w.tmp_path);
  } else {
    const char* c = static_cast<const char*>(bytes);
    w.buffer.insert(w.buffer.end(), c, c + n);
  }
  w.written += n;
}

void SafetensorsWriter::finish() {
  Impl& w = *impl_;
  if (w.state != Impl::State::kData) fail("{}: finish without begin_data (or called twice)", w.path);
  if (w.written != w.total) {
    fail("{}: only {} of the {} declared data bytes were appended", w.path, w.written, w.total);
  }
  w.flush();
  int fd = std::exchange(w.fd, -1);
  w.state = Impl::State::kFinished;
  try {
    commit_file(fd, w.tmp_path, w.path);
  } catch (...) {
    ::unlink(w.tmp_path.c_str());
    throw;
  }
}

uint64_t SafetensorsWriter::data_bytes() const { return impl_->total; }

void write_safetensors_index(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size) {
  json doc;
  doc["metadata"] = {{"total_size", total_size}};
  json map = json::object();
  for (const auto& [tensor, shard] : weight_map) {
    check_plain_file_name(shard, fmt::format("index entry for tensor '{}': shard file", shown(tensor)));
    map[tensor] = shard;
  }
  doc["weight_map"] = std::move(map);
  std::string text;
  try {
    text = doc.dump(2) + "\n";
  } catch (const json::exception& e) {
    fail("{}: cannot encode the index (names must be UTF-8): {}", dir, e.what());
  }
  const std::string path = dir + "/model.safetensors.index.json";
  const std::string tmp = path + ".tmp";
  int fd = create_for_writing(tmp);
  try {
    write_all(fd, text.data(), text.size(), tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  try {
    commit_file(fd, tmp, path);  // closes fd
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace shardlm
