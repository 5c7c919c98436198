# Long context, the global layers' KV split by sequence across MPI workers (slow: minutes each).
foreach(part split budget)
  add_test(NAME long_context_${part}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/long_context_test.sh $<TARGET_FILE:shardlm> ${SHARDLM_ROOT}
            ${CMAKE_BINARY_DIR}/tests/long_context_${part} ${part})
  set_tests_properties(long_context_${part} PROPERTIES LABELS "mpi;slow" TIMEOUT 3600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()
