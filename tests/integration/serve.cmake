# `shardlm serve` under mpirun (coordinator + 2 workers): HTTP answers, API keys, idle CPU, SIGTERM.
add_test(NAME serve_mpi_cluster
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/serve_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/serve_mpi_cluster)
set_tests_properties(serve_mpi_cluster PROPERTIES LABELS "integration;mpi" TIMEOUT 300 RUN_SERIAL TRUE)
