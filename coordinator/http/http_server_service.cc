// HttpServer over a TextService (kept apart so that servers over other backends do not link it).
#include "coordinator/http/http_server.h"

namespace shardlm::http {

HttpServer::HttpServer(TextService& service, HttpServerOptions options)
    : HttpServer(std::shared_ptr<TextBackend>(text_service_backend(service)), std::move(options)) {}

}  // namespace shardlm::http
