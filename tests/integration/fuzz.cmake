# The fuzz targets of tests/fuzz (listed in tests/fuzz/targets.cmake) as short, deterministic runs of
# the test suite, with any compiler: each target is linked with tests/fuzz/fuzz_driver.cc (a mutation
# loop without libFuzzer) and the project's libraries. fuzz_<name> runs the seed corpus
# (tests/fuzz/corpus/<name>/) and a fixed number of mutants of it (seed 1), a few seconds at most;
# fuzz_<name>_crashes replays the reproducers of failures found so far (tests/fuzz/crashes/<name>/).
# A failing input is written to <build>/tests/fuzz/crash-fuzz_driver_<name>-seed1.
# The coverage-guided libFuzzer builds and their long runs: tests/fuzz/CMakeLists.txt,
# tests/fuzz/run_long.sh, docs/reliability.md.
set(shardlm_fuzz_src ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(shardlm_fuzz_out ${CMAKE_BINARY_DIR}/tests/fuzz)

add_library(shardlm_fuzz_driver OBJECT ${shardlm_fuzz_src}/fuzz_driver.cc ${shardlm_fuzz_src}/fuzz_mutator.cc)
target_include_directories(shardlm_fuzz_driver PRIVATE ${SHARDLM_ROOT})
target_link_libraries(shardlm_fuzz_driver PRIVATE nlohmann_json::nlohmann_json)

function(shardlm_fuzz_target)
  cmake_parse_arguments(F "" "NAME;DICT;MAX_LEN;RUNS" "SOURCES;PROTO;LIBS" ${ARGN})
  set(target fuzz_driver_${F_NAME})
  add_executable(${target} ${shardlm_fuzz_src}/fuzz_${F_NAME}.cc $<TARGET_OBJECTS:shardlm_fuzz_driver>)
  target_link_libraries(${target} PRIVATE ${F_LIBS})
  target_compile_definitions(${target} PRIVATE SHARDLM_FUZZ_DATA_DIR="${SHARDLM_ROOT}/tests/data")
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${shardlm_fuzz_out})
  set(args -runs=${F_RUNS} -seed=1 -max_len=${F_MAX_LEN} -timeout=30 -artifact_prefix=${shardlm_fuzz_out}/)
  if(F_DICT)
    list(APPEND args -dict=${shardlm_fuzz_src}/${F_DICT})
  endif()
  add_test(NAME fuzz_${F_NAME} COMMAND ${target} ${args} ${shardlm_fuzz_src}/corpus/${F_NAME})
  set_tests_properties(fuzz_${F_NAME} PROPERTIES LABELS "unit;fuzz" TIMEOUT 120)
  # Reproducers of the failures the fuzzers found: each must now pass. They run on a 512 KiB stack,
  # so that a reproducer of unbounded recursion (deeply nested JSON) stays a small file.
  if(EXISTS ${shardlm_fuzz_src}/crashes/${F_NAME})
    add_test(NAME fuzz_${F_NAME}_crashes
      COMMAND sh -c "ulimit -s 512 && exec \"$0\" \"$@\"" $<TARGET_FILE:${target}> -runs=0 -timeout=30
              -artifact_prefix=${shardlm_fuzz_out}/ ${shardlm_fuzz_src}/crashes/${F_NAME})
    set_tests_properties(fuzz_${F_NAME}_crashes PROPERTIES LABELS "unit;fuzz" TIMEOUT 120)
  endif()
endfunction()

include(${shardlm_fuzz_src}/targets.cmake)
