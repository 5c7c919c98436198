# `shardlm chat-template` against the official Gemma 4 Jinja chat template: every conversation in
# tests/support/chat/*.json must render byte-identically (tests/support/chat_parity.mjs). Skipped
# (exit 77) when Node.js or tests/support/node/node_modules is missing.
find_program(SHARDLM_NODE node)
if(SHARDLM_NODE)
  add_test(NAME chat_template_parity
    COMMAND ${SHARDLM_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/support/chat_parity.mjs --shardlm $<TARGET_FILE:shardlm>)
else()
  add_test(NAME chat_template_parity COMMAND sh -c "echo 'SKIP: node not found'; exit 77")
endif()
set_tests_properties(chat_template_parity PROPERTIES LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)
