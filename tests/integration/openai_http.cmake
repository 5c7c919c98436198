# The OpenAI-compatible HTTP API (coordinator/http).
# - The in-process test of the server over the real text service and engine
#   (tests/unit/coordinator/http/test_live_server.cc) needs the engine library too.
# - openai_http_client: `shardlm serve` under mpirun (coordinator + 2 workers) driven by the official
#   `openai` npm client, unmodified (tests/support/openai, `npm ci` there); skipped (77) without
#   mpirun, node or that node_modules.
if(TARGET unit_coordinator_http_live_server AND TARGET shardlm_engine)
  target_link_libraries(unit_coordinator_http_live_server PRIVATE shardlm_engine)
endif()

add_test(NAME openai_http_client
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/openai_http_test.sh $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/data/dense ${CMAKE_BINARY_DIR}/tests/openai_http)
set_tests_properties(openai_http_client PROPERTIES
  LABELS "integration;mpi" TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
