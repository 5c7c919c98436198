# Soak (tests/integration/soak_test.sh): 64 TCP clients with mixed requests, cancellations and
# disconnects against a coordinator + 2 workers. The CI version runs 60 s; the 10-minute run
# (docs/reliability.md) is labelled slow.
add_test(NAME soak_short
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/soak_test.sh $<TARGET_FILE:shardlm> $<TARGET_FILE:shardlm_soak>
          ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/soak_short 60 64)
set_tests_properties(soak_short PROPERTIES LABELS "integration;mpi" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
add_test(NAME soak_10min
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/soak_test.sh $<TARGET_FILE:shardlm> $<TARGET_FILE:shardlm_soak>
          ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/soak_10min 600 64)
set_tests_properties(soak_10min PROPERTIES LABELS "integration;mpi;slow" TIMEOUT 900 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
