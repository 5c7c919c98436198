#include "common/npy.h"

#include <cstring>
#include <fstream>
#include <regex>

#include "common/error.h"

namespace shardlm {

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}", path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail("{}: not a .npy file", path);
  size_t header_len = 0;
  if (magic[6] == 1) {
    uint8_t len[2];
    in.read(reinterpret_cast<char*>(len), 2);
    header_len = len[0] | (len[1] << 8);
  } else if (magic[6] == 2 || magic[6] == 3) {
    uint8_t len[4];
    in.read(reinterpret_cast<char*>(len), 4);
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<size_t>(len[3]) << 24);
  } else {
    fail("{}: unsupported .npy version {}", path, static_cast<int>(magic[6]));
  }
  if (header_len > (1u << 20)) fail("{}: .npy header too long", path);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!in) fail("{}: truncated .npy header", path);
  if (header.find("'<f4'") == std::string::npos) fail("{}: only little-endian float32 is supported", path);
  if (header.find("'fortran_order': True") != std::string::npos) fail("{}: Fortran order not supported", path);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) fail("{}: no shape in header", path);
  NpyArray arr;
  std::string dims = m[1];
  std::regex num("\\d+");
  size_t count = 1;
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it) {
    int64_t d = std::stoll(it->str());
    arr.shape.push_back(d);
    count *= static_cast<size_t>(d);
  }
  arr.data.resize(count);
  in.read(reinterpret_cast<char*>(arr.data.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (!in) fail("{}: truncated data (expected {} floats)", path, count);
  return arr;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dims;
  size_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dims += ",";
    if (i + 1 < shape.size()) dims += " ";
    count *= static_cast<size_t>(shape[i]);
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  header += std::string(pad, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  if (!out) fail("cannot write {}", path);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(header.size());
  char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(float)));
  if (!out) fail("error writing {}", path);
}

}  // namespace shardlm
