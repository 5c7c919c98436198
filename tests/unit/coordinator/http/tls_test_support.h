// Test support for TLS: a temporary folder with self-signed certificates made with OpenSSL's API
// (an EC P-256 key, subjectAltName DNS:localhost and IP:127.0.0.1, valid for a day), and a blocking
// HTTPS client (Boost.Beast over TLS, every call bounded in time) for the HTTP server's tests.
#pragma once

#include <utility>  // before Boost.Asio 1.74: its awaitable.hpp uses std::exchange without it

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/tls.h"

namespace shardlm::tls_testing {

// A certificate and its key as PEM files.
struct CertFiles {
  std::string cert;
  std::string key;
};

class TlsFiles {
 public:
  TlsFiles() {
    dir_ = std::filesystem::temp_directory_path() / ("shardlm-tls-" + std::to_string(::getpid()) + "-" +
                                                     std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
  }
  ~TlsFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TlsFiles(const TlsFiles&) = delete;
  TlsFiles& operator=(const TlsFiles&) = delete;

  // A self-signed certificate (its own CA) for `san` ("DNS:localhost,IP:127.0.0.1").
  CertFiles self_signed(const std::string& name, const std::string& san = "DNS:localhost,IP:127.0.0.1") {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (key == nullptr) throw std::runtime_error("EC key generation failed");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(counter()++) + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME* subject = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, subject);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                                     std::pair<int, std::string>{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      if (ext == nullptr) throw std::runtime_error("bad certificate extension " + value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, key, EVP_sha256()) == 0) throw std::runtime_error("signing the certificate failed");
    CertFiles files{(dir_ / (name + ".crt")).string(), (dir_ / (name + ".key")).string()};
    std::FILE* f = std::fopen(files.cert.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(files.key.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    return files;
  }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path dir_;
};

struct HttpsResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One HTTPS request on a connection of its own, verified against `ca_file` and the host name
// 127.0.0.1. Throws std::runtime_error naming the step that failed (TLS handshake, ...) or timed out.
inline HttpsResult https_request(int port, const std::string& ca_file, const std::string& method, const std::string& target,
                                 const std::string& body = "", const std::vector<std::string>& headers = {},
                                 double timeout_s = 20) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace bhttp = beast::http;
  asio::io_context io;
  auto ctx = tls::client_context(ca_file, true);
  beast::ssl_stream<beast::tcp_stream> stream(io, *ctx);
  tls::prepare_client(stream, "127.0.0.1", true);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
  auto run = [&](const char* step, bool& done, beast::error_code& ec) {
    io.restart();
    while (!done && io.run_one_until(deadline) > 0) {
    }
    if (!done) {
      beast::get_lowest_layer(stream).close();
      io.restart();
      io.run();
      throw std::runtime_error(std::string(step) + " timed out");
    }
    if (ec) throw std::runtime_error(std::string(step) + " failed: " + tls::handshake_failure(stream, ec));
  };
  bool done = false;
  beast::error_code ec;
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  beast::get_lowest_layer(stream).async_connect(endpoint, [&](beast::error_code e) { done = true; ec = e; });
  run("connect", done, ec);
  done = false;
  stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { done = true; ec = e; });
  run("TLS handshake", done, ec);
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, "127.0.0.1");
  for (const std::string& h : headers) {
    const size_t colon = h.find(':');
    req.set(h.substr(0, colon), h.substr(colon + 2));
  }
  if (!body.empty() || method == "POST") {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  done = false;
  bhttp::async_write(stream, req, [&](beast::error_code e, size_t) { done = true; ec = e; });
  run("writing the request", done, ec);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  done = false;
  bhttp::async_read(stream, buffer, res, [&](beast::error_code e, size_t) { done = true; ec = e; });
  run("reading the response", done, ec);
  HttpsResult r;
  r.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(field.value());
  }
  r.body = res.body();
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  return r;
}

}  // namespace shardlm::tls_testing
