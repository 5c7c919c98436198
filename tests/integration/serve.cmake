# `shardlm serve` under mpirun (coordinator + 2 workers): HTTP answers, API keys, idle CPU, SIGTERM.
add_test(NAME serve_mpi_cluster
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/serve_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/serve_mpi_cluster)
set_tests_properties(serve_mpi_cluster PROPERTIES LABELS "integration;mpi" TIMEOUT 300 RUN_SERIAL TRUE)

# The KV cache sized to the available memory and committed as it fills (coordinator + 2 workers).
add_test(NAME serve_kv_sized_to_memory
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/kv_memory_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/serve_kv_memory)
set_tests_properties(serve_kv_sized_to_memory PROPERTIES LABELS "integration;mpi" TIMEOUT 180 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
