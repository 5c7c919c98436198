# The engine split over MPI ranks (coordinator + 1..4 workers) against the single process.
foreach(transport default ucx)
  add_test(NAME mpi_engine_matches_single_process_${transport}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/mpi_engine_test.sh $<TARGET_FILE:shardlm>
            ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/mpi_engine_${transport} ${transport})
  set_tests_properties(mpi_engine_matches_single_process_${transport} PROPERTIES
    LABELS mpi TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()

# The same across two hosts made of network namespaces (skips where they cannot be created).
foreach(transport tcp ucx)
  add_test(NAME mpi_engine_netns_2hosts_${transport}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/mpi_engine_netns_test.sh $<TARGET_FILE:shardlm>
            ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/mpi_engine_netns_${transport} ${transport})
  set_tests_properties(mpi_engine_netns_2hosts_${transport} PROPERTIES
    LABELS mpi TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()

# The step benchmark end to end on a tiny MoE (one process and coordinator + 2 workers): it runs,
# and its roofline counts only the routed experts.
add_test(NAME bench_step_tiny_moe
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/bench_step_test.sh $<TARGET_FILE:shardlm_bench_step>)
set_tests_properties(bench_step_tiny_moe PROPERTIES
  LABELS "mpi;integration" TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)

# Ranks that loaded different models are refused at start (tests/integration/mixed_models_test.sh).
add_test(NAME mpi_refuses_mixed_models
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/mixed_models_test.sh $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/mpi_refuses_mixed_models)
set_tests_properties(mpi_refuses_mixed_models PROPERTIES
  LABELS "mpi;integration" TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
