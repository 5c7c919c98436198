# The `shardlm logits` and `shardlm generate` commands end to end on the golden checkpoints.
set(SHARDLM_GOLDEN ${CMAKE_CURRENT_SOURCE_DIR}/data)
foreach(model dense moe edge dense-f32-sharded)
  foreach(chunk 0 7)
    set(chunk_arg "")
    if(NOT chunk EQUAL 0)
      set(chunk_arg "--chunk ${chunk}")
    endif()
    set(out ${CMAKE_BINARY_DIR}/tests/logits_${model}_${chunk}.npy)
    add_test(NAME cli_logits_${model}_chunk${chunk}
      COMMAND sh -c "$<TARGET_FILE:shardlm> logits --model ${SHARDLM_GOLDEN}/${model} --tokens @${SHARDLM_GOLDEN}/${model}/tokens.txt --out ${out} ${chunk_arg} && /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/support/compare_logits.py ${out} ${SHARDLM_GOLDEN}/${model}/logits.npy 1e-3")
    set_tests_properties(cli_logits_${model}_chunk${chunk} PROPERTIES LABELS integration TIMEOUT 120)
  endforeach()
endforeach()

add_test(NAME cli_logits_rejects_bad_tokens
  COMMAND sh -c "! $<TARGET_FILE:shardlm> logits --model ${SHARDLM_GOLDEN}/dense --tokens 2,99999 --out /dev/null 2> ${CMAKE_BINARY_DIR}/tests/bad_tokens.err && grep -q 'token id 99999 outside the vocabulary' ${CMAKE_BINARY_DIR}/tests/bad_tokens.err")
set_tests_properties(cli_logits_rejects_bad_tokens PROPERTIES LABELS integration TIMEOUT 60)

add_test(NAME cli_generate_tiny_models
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/generate_test.sh $<TARGET_FILE:shardlm> ${CMAKE_BINARY_DIR}/tests/generate)
set_tests_properties(cli_generate_tiny_models PROPERTIES LABELS integration TIMEOUT 300)

# Bad checkpoints (a tensor against its config) and bad command-line values refused by name.
add_test(NAME cli_refuses_bad_input
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/bad_input_test.sh $<TARGET_FILE:shardlm>
          ${CMAKE_CURRENT_SOURCE_DIR}/support ${CMAKE_BINARY_DIR}/tests/bad_input)
set_tests_properties(cli_refuses_bad_input PROPERTIES LABELS integration TIMEOUT 180)
