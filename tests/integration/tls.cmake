# TLS of `shardlm serve` under mpirun (coordinator + 1 worker) with a self-signed certificate made by
# the openssl command: HTTPS with curl --cacert (chat completion, streamed and not), `shardlm client
# --tls --tls-ca` over the TCP protocol, plaintext clients against the TLS ports failing cleanly while
# TLS clients are served, a wrong CA refused by both clients, and startup errors naming the file.
# Skipped (77) without mpirun, openssl or curl.
add_test(NAME serve_tls
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/tls_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/serve_tls)
set_tests_properties(serve_tls PROPERTIES
  LABELS "integration;mpi" TIMEOUT 120 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
