# How serve stops on SIGTERM (tests/integration/serve_shutdown_test.sh): completions refused during the
# drain, requests left at the end of the grace ended with an error, a worker hung during the drain
# ending the job with exit status 75.
foreach(mode drain worker-hang)
  add_test(NAME serve_shutdown_${mode}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/serve_shutdown_test.sh $<TARGET_FILE:shardlm>
            ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/serve_shutdown_${mode} ${mode})
  set_tests_properties(serve_shutdown_${mode} PROPERTIES
    LABELS "integration;mpi" TIMEOUT 180 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()
