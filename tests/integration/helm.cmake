# The Helm chart (helm/shardlm): lint, render (default, presets, all features, hostPath) and
# validate every manifest offline; the presets' worker memory checked with `shardlm plan`.
add_test(NAME helm_chart
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/helm_test.sh $<TARGET_FILE:shardlm>
          ${CMAKE_BINARY_DIR}/tests/helm_chart)
set_tests_properties(helm_chart PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)

# The chart's launcher script (files/launch.sh) on three network-namespace "hosts": rank 0 on the
# launcher, ranks 1..2 on the workers, the same generated text as one process (needs root; skips
# otherwise).
add_test(NAME helm_launcher_netns
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/support/helm/launcher_netns_test.sh $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/helm_launcher_netns)
set_tests_properties(helm_launcher_netns PROPERTIES
  LABELS "mpi;integration" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
