# Batch jobs that survive a kill -9 of the whole MPI job (coordinator/jobs): a 200-line batch on the
# tiny golden model, killed in the middle and resumed from the same --state-dir, through the official
# OpenAI client (batch_jobs_openai_restart) and through the TCP protocol with `shardlm client jobs`
# (batch_jobs_native_restart). Skipped (77) without mpirun, node or tests/support/openai/node_modules.
foreach(mode openai native)
  add_test(NAME batch_jobs_${mode}_restart
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/batch_jobs_test.sh $<TARGET_FILE:shardlm>
            ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/batch_jobs_${mode} ${mode})
  set_tests_properties(batch_jobs_${mode}_restart PROPERTIES
    LABELS "integration;mpi" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endforeach()
