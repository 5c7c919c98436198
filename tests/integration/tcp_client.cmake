# `shardlm client` against `shardlm serve` under mpirun (coordinator + 2 workers) over the TCP client
# protocol: health, models, streaming generate and chat, choices, prompt log-probabilities, echo,
# concurrent clients, API keys, request errors, a malformed frame on one connection, shutdown.
# Skipped (exit 77) without mpirun.
add_test(NAME tcp_client_against_mpi_server
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/tcp_client_test.sh $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/tests/tcp_client)
set_tests_properties(tcp_client_against_mpi_server PROPERTIES
  LABELS "integration;mpi" TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
