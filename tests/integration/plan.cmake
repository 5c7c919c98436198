# `shardlm plan` end to end: the released 31B and 26B-A4B shapes on 1, 3, 4, 8 and 16 workers (a
# table with one row per worker), a checkpoint folder read through --model, an over-budget request
# that must say what would fit, and more workers than query heads.
set(SHARDLM_PLAN_OUT ${CMAKE_BINARY_DIR}/tests/plan)
file(MAKE_DIRECTORY ${SHARDLM_PLAN_OUT})
foreach(variant 31b 26b-a4b)
  foreach(workers 1 3 4 8 16)
    math(EXPR last "${workers} - 1")
    set(out ${SHARDLM_PLAN_OUT}/${variant}_w${workers}.txt)
    add_test(NAME cli_plan_${variant}_w${workers}
      COMMAND sh -c "$<TARGET_FILE:shardlm> plan --variant ${variant} --workers ${workers} > ${out} && grep -q '^Plan for ${variant} on ${workers} worker' ${out} && grep -q '^| ${last} ' ${out} && ! grep -q '^| ${workers} ' ${out} && grep -q '^Largest worker: ' ${out}")
    set_tests_properties(cli_plan_${variant}_w${workers} PROPERTIES LABELS integration TIMEOUT 60)
  endforeach()
endforeach()

add_test(NAME cli_plan_model_dir
  COMMAND sh -c "$<TARGET_FILE:shardlm> plan --model ${CMAKE_CURRENT_SOURCE_DIR}/data/moe --workers 3 --context 4096 > ${SHARDLM_PLAN_OUT}/moe_w3.txt && grep -q '^Plan for tiny-moe on 3 workers' ${SHARDLM_PLAN_OUT}/moe_w3.txt && grep -q 'experts whole' ${SHARDLM_PLAN_OUT}/moe_w3.txt")
set_tests_properties(cli_plan_model_dir PROPERTIES LABELS integration TIMEOUT 60)

add_test(NAME cli_plan_over_budget_says_what_fits
  COMMAND sh -c "! $<TARGET_FILE:shardlm> plan --variant 31b --workers 2 --memory-per-worker 24GiB 2> ${SHARDLM_PLAN_OUT}/over_budget.err && grep -Eq '31b needs .* per worker on 2 workers with bf16 weights at 262144 context \\(budget 24.0 GiB\\); fits with [0-9]+ workers' ${SHARDLM_PLAN_OUT}/over_budget.err")
set_tests_properties(cli_plan_over_budget_says_what_fits PROPERTIES LABELS integration TIMEOUT 60)

add_test(NAME cli_plan_rejects_more_workers_than_heads
  COMMAND sh -c "! $<TARGET_FILE:shardlm> plan --variant 26b-a4b --workers 17 2> ${SHARDLM_PLAN_OUT}/too_many.err && grep -q '16 query heads' ${SHARDLM_PLAN_OUT}/too_many.err")
set_tests_properties(cli_plan_rejects_more_workers_than_heads PROPERTIES LABELS integration TIMEOUT 60)
