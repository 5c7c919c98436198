# A real Prometheus server scraping a serving cluster (coordinator + 2 workers) on loopback.
add_test(NAME prometheus_scrapes_cluster
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/prometheus_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/prometheus_scrapes_cluster)
set_tests_properties(prometheus_scrapes_cluster PROPERTIES
  LABELS "integration;mpi" TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
