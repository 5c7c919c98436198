# Losing a rank while a batch job runs (tests/integration/worker_loss_test.sh): a worker or the
# coordinator stopped (the others notice within --worker-timeout; exit status 75) or killed (mpirun
# ends the job); after a restart on the same --state-dir the batch completes with every line once.
foreach(mode worker-hang coordinator-hang worker-kill coordinator-kill)
  add_test(NAME worker_loss_${mode}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/worker_loss_test.sh $<TARGET_FILE:shardlm>
            ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/worker_loss_${mode} ${mode})
  set_tests_properties(worker_loss_${mode} PROPERTIES
    LABELS "integration;mpi" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()
