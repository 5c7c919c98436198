// safetensors files: a validated, memory-mapped reader of one file, and a streaming writer.
// Every header field is checked before use; malformed input throws Error naming the file and field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shardlm {

enum class DType { kF32, kF16, kBF16 };

const char* dtype_name(DType d);     // "F32", "F16", "BF16" (safetensors spelling)
size_t dtype_size(DType d);          // bytes per element
DType parse_dtype(const std::string& name);  // throws Error for unknown / unsupported
// Bits per element of a safetensors dtype shardlm does not read (I64, U8, F8_E4M3, ...; 0 for
// F32/F16/BF16 and for names that are no safetensors dtype). A checkpoint may hold such tensors
// (buffers of a vision tower): they are listed and their bytes checked, and only reading one fails.
int unsupported_dtype_bits(const std::string& name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::string unsupported_dtype;  // the dtype's name when it is one shardlm does not read (dtype is then meaningless)
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset inside the file (header already added)
  uint64_t end = 0;    // one past the last byte
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
  std::string dtype_label() const { return unsupported_dtype.empty() ? dtype_name(dtype) : unsupported_dtype; }
};

// Largest JSON header a file may declare (the real ones are a few hundred KB at most).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// Everything a validated header holds.
struct SafetensorsHeader {
  uint64_t header_len = 0;  // JSON bytes after the 8-byte prefix; data starts at 8 + header_len
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__" (empty when absent)
};

// One memory-mapped .safetensors file. Movable, not copyable; unmaps on destruction.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  // Parses a header held in memory (the 8-byte length prefix included) against a file of
  // file_size bytes; used by open() and by the fuzzer. Throws Error on any malformed field.
  static std::map<std::string, TensorInfo> parse_header(const uint8_t* data, size_t size, uint64_t file_size,
                                                        const std::string& path_for_errors);
  // Same checks as parse_header, also returning the metadata and the header length.
  static SafetensorsHeader parse_header_full(const uint8_t* data, size_t size, uint64_t file_size,
                                             const std::string& path_for_errors);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Raw bytes of a tensor (inside the mapping).
  const uint8_t* data(const TensorInfo& t) const { return base_ + t.begin; }
  // Start of the mapping and its length (the whole file).
  const uint8_t* base() const { return base_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes one .safetensors file: declare every tensor first, then stream the data in declaration
// order (the header is written up front, so the data never has to sit in memory all at once).
// The bytes go to path + ".tmp", renamed to path by finish(); a writer destroyed before finish()
// removes the temporary file, so a half-written file never appears under the real name.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  void declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  // After all declares: writes the header. Then append each tensor's bytes, in declaration order,
  // in as many pieces as convenient.
  void begin_data(const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  void append(const void* bytes, size_t n);
  void finish();  // checks every declared byte was written; closes the file
  uint64_t data_bytes() const;

 private:
  struct Impl;
  Impl* impl_;
};

// Writes DIR/model.safetensors.index.json for a sharded checkpoint: {"metadata": {"total_size": N},
// "weight_map": {tensor name: shard file name}}. Shard names must be plain file names (no "/", no "..").
void write_safetensors_index(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size);

}  // namespace shardlm
