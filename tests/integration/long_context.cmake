# Long context, the global layers' KV split by sequence across MPI workers. `split` (32768 positions,
# ~2.5 min on 2 cores) runs in the suite; `budget` (a 70k-token prompt, ~10 min) is labelled slow.
add_test(NAME long_context_split
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/long_context_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/long_context_split split)
set_tests_properties(long_context_split PROPERTIES LABELS "mpi" TIMEOUT 1200 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
add_test(NAME long_context_budget
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/long_context_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
          ${CMAKE_BINARY_DIR}/tests/long_context_budget budget)
set_tests_properties(long_context_budget PROPERTIES LABELS "mpi;slow" TIMEOUT 3600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
