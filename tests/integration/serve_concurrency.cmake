# `shardlm serve` under mpirun (coordinator + 2 workers) with 32 concurrent mixed requests (HTTP and
# TCP, chat and completions, streamed and not): each text equals the same request sent alone; request
# errors during the load keep the server serving.
add_test(NAME serve_concurrency
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/serve_concurrency_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/serve_concurrency)
set_tests_properties(serve_concurrency PROPERTIES
  LABELS "integration;mpi" TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
