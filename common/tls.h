// TLS through Boost.Asio / OpenSSL for the client-facing servers and their clients (TLS 1.2 or later):
// a server context from a PEM certificate (chain) file and a PEM private key file, checked at once
// (unreadable, not PEM, key not matching the certificate: an Error naming the file); a client context
// that verifies the server against a CA file or the system's CAs (or does not verify at all); the
// host-name check and SNI of one client connection; and a readable reason for a failed handshake.
// Header-only; users link OpenSSL::SSL and OpenSSL::Crypto.
#pragma once

#include <utility>  // before Boost.Asio 1.74: its awaitable.hpp uses std::exchange without it

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <string>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl.hpp>

#include "common/error.h"

namespace shardlm::tls {

namespace ssl = boost::asio::ssl;

namespace detail {

inline void require_readable(const char* what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{} {}: cannot be read", what, path);
}

inline void tls12_or_later(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) fail("TLS: cannot require TLS 1.2");
}

// Encrypted keys are refused instead of OpenSSL asking for a pass phrase on the terminal.
inline void no_pass_phrase(ssl::context& ctx) {
  ctx.set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); });
}

}  // namespace detail

// For a server: the certificate (chain, leaf first) and its private key, both PEM.
inline std::shared_ptr<ssl::context> server_context(const std::string& cert_file, const std::string& key_file) {
  detail::require_readable("TLS certificate file", cert_file);
  detail::require_readable("TLS key file", key_file);
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  detail::tls12_or_later(*ctx);
  detail::no_pass_phrase(*ctx);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) fail("TLS certificate file {}: not a PEM certificate: {}", cert_file, ec.message());
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) {
    // Tell a key that does not parse from one that belongs to another certificate.
    ssl::context alone(ssl::context::tls_server);
    detail::no_pass_phrase(alone);
    boost::system::error_code parse_ec;
    alone.use_private_key_file(key_file, ssl::context::pem, parse_ec);
    if (!parse_ec) fail("TLS key file {} does not match the certificate in {}", key_file, cert_file);
    fail("TLS key file {}: not an unencrypted PEM private key: {}", key_file, parse_ec.message());
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    fail("TLS key file {} does not match the certificate in {}", key_file, cert_file);
  }
  return ctx;
}

// For a client: verify the server's certificate against `ca_file` (PEM, one or more certificates) or,
// when it is empty, the system's CAs; verify = false accepts any certificate.
inline std::shared_ptr<ssl::context> client_context(const std::string& ca_file, bool verify) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  detail::tls12_or_later(*ctx);
  boost::system::error_code ec;
  if (!verify) {
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  if (!ca_file.empty()) {
    detail::require_readable("TLS CA file", ca_file);
    ctx->load_verify_file(ca_file, ec);
    if (ec) fail("TLS CA file {}: not PEM certificates: {}", ca_file, ec.message());
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) fail("TLS: cannot load the system's CA certificates: {}", ec.message());
  }
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

// Before a client's handshake: SNI for a host name, and (when verifying) that the certificate names
// `host` (a DNS name, or an IP address in its subjectAltName).
template <typename TlsStream>  // ssl::stream<...> or beast::ssl_stream<...>
void prepare_client(TlsStream& stream, const std::string& host, bool verify) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  const bool is_address = !ec;
  if (!is_address) SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  if (!verify) return;
  X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
  if (is_address) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
}

// Why a client's handshake failed: OpenSSL's reason, with the certificate check's own reason
// ("self-signed certificate", "hostname mismatch", ...) when that was it.
template <typename TlsStream>
std::string handshake_failure(TlsStream& stream, const boost::system::error_code& ec) {
  std::string reason = ec.message();
  const long verify = SSL_get_verify_result(stream.native_handle());
  if (verify != X509_V_OK) reason += fmt::format(": the server's certificate is not trusted ({})", X509_verify_cert_error_string(verify));
  return reason;
}

}  // namespace shardlm::tls
