# shardlm under Slurm on a single-node cluster started by the test (deploy/slurm/local-cluster.sh;
# installs slurm-wlm and munge when missing; needs root, skips otherwise).
# slurm_smoke: srun --mpi=pmix coordinator + 2 workers through sbatch, and shardlm.sbatch's refusals.
add_test(NAME slurm_smoke
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/slurm_test.sh smoke $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/slurm_smoke)
set_tests_properties(slurm_smoke PROPERTIES
  LABELS "slurm;integration" TIMEOUT 420 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
# slurm_serve: shardlm-slurm serving a tiny model, requests, requeue, scancel .
add_test(NAME slurm_serve
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/slurm_test.sh serve $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/slurm_serve)
set_tests_properties(slurm_serve PROPERTIES
  LABELS "slurm;integration" TIMEOUT 900 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
