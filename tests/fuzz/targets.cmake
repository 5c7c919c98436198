# The fuzz targets, one shardlm_fuzz_target() call each. The function is defined by the file that
# includes this one: tests/fuzz/CMakeLists.txt builds libFuzzer binaries (clang, -DSHARDLM_FUZZ=ON),
# tests/integration/fuzz.cmake builds plain drivers for the test suite (any compiler). Arguments:
#   NAME      target name: tests/fuzz/fuzz_<NAME>.cc holds LLVMFuzzerTestOneInput, corpus/<NAME>/ the
#             seed inputs, crashes/<NAME>/ (when present) reproducers of crashes found so far
#   SOURCES   the project sources the target exercises, compiled into the libFuzzer binary with the
#             sanitizers and coverage (paths from the repository root)
#   PROTO     .proto files (proto/<name>.proto) whose generated code the target needs
#   LIBS      the project libraries the plain driver links instead of SOURCES
#   DICT      libFuzzer dictionary in tests/fuzz/
#   MAX_LEN   longest input the fuzzers try
#   RUNS      mutants of the plain driver's test-suite run (about a second on one core)

set(SHARDLM_FUZZ_TOKENIZER_SOURCES
  model/tokenizer.cc model/tokenizer_added.cc model/tokenizer_bpe.cc model/tokenizer_json.cc
  model/tokenizer_pipeline.cc model/tokenizer_utf8.cc)
set(SHARDLM_FUZZ_CHAT_TEMPLATE_SOURCES model/chat_template.cc model/chat_template_jinja.cc)
set(SHARDLM_FUZZ_OPENAI_SOURCES
  coordinator/http/openai_request.cc coordinator/http/api_error.cc coordinator/http/openai_response.cc
  coordinator/sampler.cc coordinator/request_error.cc ${SHARDLM_FUZZ_CHAT_TEMPLATE_SOURCES})

shardlm_fuzz_target(NAME safetensors_header
  SOURCES model/safetensors.cc common/half.cc
  LIBS shardlm_model
  DICT safetensors.dict MAX_LEN 4096 RUNS 50000)

shardlm_fuzz_target(NAME model_config
  SOURCES model/config.cc model/config_resolve.cc model/config_writer.cc model/variants.cc model/tensor_names.cc
  LIBS shardlm_model
  DICT config.dict MAX_LEN 8192 RUNS 15000)

shardlm_fuzz_target(NAME tokenizer_json
  SOURCES ${SHARDLM_FUZZ_TOKENIZER_SOURCES}
  LIBS shardlm_model
  DICT tokenizer.dict MAX_LEN 20000 RUNS 8000)

shardlm_fuzz_target(NAME tokenizer_golden
  SOURCES ${SHARDLM_FUZZ_TOKENIZER_SOURCES}
  LIBS shardlm_model
  DICT tokenizer.dict MAX_LEN 4096 RUNS 50000)

shardlm_fuzz_target(NAME chat_template
  SOURCES ${SHARDLM_FUZZ_CHAT_TEMPLATE_SOURCES}
  LIBS shardlm_model
  DICT chat.dict MAX_LEN 8192 RUNS 30000)

shardlm_fuzz_target(NAME chat_output
  SOURCES model/chat_output.cc
  LIBS shardlm_model
  DICT chat_output.dict MAX_LEN 4096 RUNS 50000)

shardlm_fuzz_target(NAME protocol_frames
  SOURCES proto/frame.cc coordinator/tcp/text_conversion.cc coordinator/tcp/protocol.cc coordinator/sampler.cc
          coordinator/request_error.cc ${SHARDLM_FUZZ_CHAT_TEMPLATE_SOURCES}
  PROTO client
  LIBS shardlm_tcp
  DICT protocol.dict MAX_LEN 4096 RUNS 100000)

shardlm_fuzz_target(NAME step_plan
  SOURCES proto/step_message.cc proto/step_batch.cc
  PROTO step
  LIBS shardlm_proto
  MAX_LEN 4096 RUNS 150000)

shardlm_fuzz_target(NAME openai_request
  SOURCES ${SHARDLM_FUZZ_OPENAI_SOURCES}
  LIBS shardlm_http
  DICT chat.dict MAX_LEN 8192 RUNS 30000)

shardlm_fuzz_target(NAME http_request
  SOURCES coordinator/http/api_router.cc ${SHARDLM_FUZZ_OPENAI_SOURCES}
  LIBS shardlm_http
  DICT http.dict MAX_LEN 8192 RUNS 40000)

shardlm_fuzz_target(NAME batch_jsonl
  SOURCES coordinator/jobs/batch_file.cc ${SHARDLM_FUZZ_OPENAI_SOURCES}
  LIBS shardlm_jobs
  DICT batch.dict MAX_LEN 8192 RUNS 10000)

shardlm_fuzz_target(NAME multipart
  SOURCES coordinator/jobs/multipart.cc
  LIBS shardlm_jobs
  DICT multipart.dict MAX_LEN 4096 RUNS 100000)
