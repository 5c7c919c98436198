# Request limits of `shardlm serve` under mpirun (coordinator + 1 worker): --max-connections on the
# HTTP and TCP ports, --max-body-bytes, --max-prompt-tokens, --rate-limit per API key (one budget
# across HTTP and TCP) and --max-waiting, each answered with its own status and message while a
# normal request still succeeds afterwards. Skipped (77) without mpirun or curl.
add_test(NAME serve_limits
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/limits_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/serve_limits)
set_tests_properties(serve_limits PROPERTIES
  LABELS "integration;mpi" TIMEOUT 150 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
