# Losing a rank while a batch job runs (tests/integration/worker_loss_test.sh): a worker or the
# coordinator killed with SIGKILL, under mpirun with orte_enable_recovery (the coordinator / workers
# notice within --worker-timeout and end the job with status 75) and under mpirun's defaults; after a
# restart on the same --state-dir the batch completes with every line exactly once.
foreach(mode worker coordinator default)
  add_test(NAME worker_loss_${mode}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/worker_loss_test.sh $<TARGET_FILE:shardlm>
            ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/worker_loss_${mode} ${mode})
  set_tests_properties(worker_loss_${mode} PROPERTIES
    LABELS "integration;mpi" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()
