# A short libFuzzer run of the safetensors header parser, starting from the seed corpus. Only in fuzz
# builds (-DSHARDLM_FUZZ=ON with clang; tests/fuzz builds the target); skipped (exit 77) when the
# fuzz binary has not been built.
if(SHARDLM_FUZZ AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  set(fuzz_bin ${CMAKE_BINARY_DIR}/bin/fuzz_safetensors_header)
  set(fuzz_work ${CMAKE_BINARY_DIR}/tests/fuzz_safetensors_corpus)
  add_test(NAME fuzz_safetensors_header_smoke
    COMMAND sh -c "test -x ${fuzz_bin} || exit 77; mkdir -p ${fuzz_work} && ${fuzz_bin} -seed=1 -runs=50000 -max_len=4096 -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/safetensors.dict ${fuzz_work} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/safetensors")
  set_tests_properties(fuzz_safetensors_header_smoke PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
