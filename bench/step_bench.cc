// End-to-end step benchmark of the distributed engine: prefill one prompt (per sequence), then decode
// tokens one step at a time (with --sequences N, N sequences side by side: one token of each per
// step, as continuous batching runs them), and print the per-step time split into compute and
// communication per worker. Run alone (one process) or under mpirun -np K+1 (coordinator + K
// workers).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/error.h"
#include "common/huge_page_arena.h"
#include "common/text_format.h"
#include "bench/read_bandwidth.h"
#include "engine/engine.h"
#include "partition/byte_size.h"

using namespace shardlm;

// Seconds of decode between two measurements of the read bandwidth.
constexpr double kSliceSeconds = 1.0;

int main(int argc, char** argv) {
  CLI::App app("shardlm step benchmark: per-token compute vs communication");
  EngineOptions o;
  int prompt = 128, decode = 32, bandwidth_threads = 0, sequences = 1;
  auto* model = app.add_option("--model", o.model_dir, "Checkpoint folder");
  auto* synthetic = app.add_option("--synthetic-weights", o.synthetic, "Instead of --model: random weights of this variant (31b, 26b-a4b, ...)");
  model->excludes(synthetic);
  app.add_option("--layers", o.synthetic_layers, "Layers of the synthetic model (default: all)")->needs(synthetic);
  app.add_option("--weights", o.weights, "auto | f32 | bf16 | int8 | q4");
  app.add_option("--kv-dtype", o.kv_dtype, "KV cache storage: f32 | bf16")->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--matmul", o.matmul, "Matmul backend: own | onednn | amx")->check(CLI::IsMember({"own", "onednn", "amx"}));
  app.add_option("--threads", o.threads, "Compute threads per rank (0 = all cores)");
  app.add_option("--prompt", prompt, "Prompt tokens");
  app.add_option("--decode", decode, "Decoded tokens measured (per sequence)");
  app.add_option("--sequences", sequences, "Sequences decoded side by side, one token of each per step")
      ->check(CLI::Range(1, 256));
  app.add_option("--bandwidth-threads", bandwidth_threads,
                 "Threads of the read-bandwidth baseline (0 = all cores; e.g. 1 for a single process with --threads 1)");
  std::string bandwidth_bytes;
  app.add_option("--bandwidth-bytes", bandwidth_bytes,
                 "Bytes the read-bandwidth baseline streams through, e.g. 8GiB for a working set the size of a "
                 "worker's weights (default: four times the L3, 256 MiB to 1 GiB)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.model_dir.empty() && o.synthetic.empty()) fail("give --model DIR or --synthetic-weights VARIANT");
    size_t baseline_bytes = bench::stream_bytes();
    if (!bandwidth_bytes.empty()) {
      const int64_t b = parse_byte_size(bandwidth_bytes);
      if (b < (int64_t{1} << 20)) fail("--bandwidth-bytes {}: the baseline needs at least 1 MiB", bandwidth_bytes);
      baseline_bytes = static_cast<size_t>(b);
    }
    // Room for the timed tokens and one untimed step per slice (at most one per timed token).
    o.max_context = prompt + 2 * decode + 16;
    o.max_sequences = sequences;
    o.kv_tokens = o.max_context * sequences;
    const auto load_start = std::chrono::steady_clock::now();
    std::unique_ptr<StepEngine> engine = open_engine(o);
    if (!engine) return 0;  // a worker rank
    // The read bandwidth available to the run (by default all cores: the machine's), measured with
    // the workers idle before the decode and after every slice of it (~1 s of tokens): this VM's
    // bandwidth drifts from minute to minute, so each slice is compared with the bandwidth measured
    // right before and right after it.
    const int baseline_threads = bandwidth_threads > 0 ? bandwidth_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const AlignedBuffer<float> baseline_buffer = bench::read_buffer(baseline_bytes);
    const int compute_threads = omp_get_max_threads();
    // A baseline of several GiB (--bandwidth-bytes) is one pass per stream count: each pass is a
    // long measurement already, and five of each would take longer than the slices they frame.
    const size_t baseline_runs = baseline_bytes > (size_t{1} << 30) ? 1 : 5;
    auto read_bandwidth_now = [&] {
      const double bw = bench::read_bandwidth(baseline_buffer, baseline_threads, 0.25, baseline_runs);
      omp_set_num_threads(compute_threads);
      return bw;
    };
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
    const int64_t V = engine->config().vocab_size;
    // Each sequence's prompt (different tokens per sequence) in a step of its own.
    std::vector<int> seqs(static_cast<size_t>(sequences));
    std::vector<int32_t> tokens(static_cast<size_t>(sequences));
    std::vector<RowCandidates> out;
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < sequences; ++s) {
      seqs[s] = engine->new_sequence();
      std::vector<int32_t> ids(static_cast<size_t>(prompt));
      for (int i = 0; i < prompt; ++i) ids[i] = 2 + (i * 7919 + s * 104729) % static_cast<int32_t>(std::min<int64_t>(V - 2, 50000));
      StepBatch pre;
      pre.add(seqs[s], 0, ids, false, true);
      engine->step(pre, {RowRequest{1, 0.0f}}, out);
      tokens[s] = out[0].top[0].token;
    }
    const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int W = engine->num_workers();
    std::vector<double> compute(W, 0.0), comm(W, 0.0);
    const std::vector<RowRequest> rows(static_cast<size_t>(sequences), RowRequest{1, 0.0f});
    // Slices of the decode: tokens, seconds and the read bandwidth around each. Each slice starts with
    // one untimed step: the bandwidth measurement before it leaves the weights untouched for a
    // second or more, which on a VM whose host reclaims or tracks guest memory makes the next pass
    // over them pay a fault per 2 MiB (see idle_touch_seconds below) that a decode running without
    // pauses does not pay for this long an idle time.
    struct Slice {
      int tokens = 0;
      double seconds = 0.0, bandwidth = 0.0;
    };
    std::vector<Slice> slices;
    int64_t position = prompt;
    auto decode_step = [&] {
      StepBatch b;
      for (int s = 0; s < sequences; ++s) b.add(seqs[s], position, {tokens[s]}, false, true);
      engine->step(b, rows, out);
      for (int s = 0; s < sequences; ++s) tokens[s] = out[s].top[0].token;
      ++position;
    };
    double bw_before = read_bandwidth_now();
    double decode_s = 0.0;
    for (int i = 0; i < decode;) {
      Slice slice;
      decode_step();  // untimed
      t0 = std::chrono::steady_clock::now();
      for (; i < decode && slice.seconds < kSliceSeconds; ++i) {
        decode_step();
        const std::vector<WorkerStepFigures> f = engine->last_step_figures();
        for (int w = 0; w < W && w < static_cast<int>(f.size()); ++w) {
          compute[w] += f[w].compute_s;
          comm[w] += f[w].comm_s;
        }
        ++slice.tokens;
        slice.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      const double bw_after = read_bandwidth_now();
      slice.bandwidth = (bw_before + bw_after) / 2;
      bw_before = bw_after;
      decode_s += slice.seconds;
      slices.push_back(slice);
    }
    const double per_token_ms = 1e3 * decode_s / decode;  // per step: one token of each sequence
    std::printf("%s\n", engine->description.c_str());
    std::printf("loaded (created / read, quantised, packed) in %.1f s\n", load_s);
    if (sequences == 1) {
      std::printf("prefill %d tokens: %.2f s (%.1f tok/s)\n", prompt, prefill_s, prompt / prefill_s);
      std::printf("decode %d tokens: %.2f ms/token (%.2f tok/s; %zu more untimed, one after each bandwidth measurement)\n",
                  decode, per_token_ms, decode / decode_s, slices.size());
    } else {
      std::printf("prefill %d x %d tokens: %.2f s (%.1f tok/s)\n", sequences, prompt, prefill_s,
                  sequences * prompt / prefill_s);
      std::printf("decode %d sequences x %d tokens: %.2f ms/step (%.2f tok/s in all, %.2f per sequence; %zu more steps "
                  "untimed, one after each bandwidth measurement)\n",
                  sequences, decode, per_token_ms, sequences * decode / decode_s, decode / decode_s, slices.size());
    }
    std::printf("%-8s %12s %12s %12s %10s %14s %12s\n", "worker", "compute ms", "comm ms", "other ms", "comm %", "weights", "peak RSS");
    const std::vector<WorkerLoadInfo> load = engine->load_info();
    for (int w = 0; w < W; ++w) {
      const double c = 1e3 * compute[w] / decode, m = 1e3 * comm[w] / decode;
      std::printf("%-8d %12.2f %12.2f %12.2f %9.1f%% %14s %12s\n", w, c, m, per_token_ms - c - m, 100.0 * m / per_token_ms,
                  w < static_cast<int>(load.size()) ? decimal_bytes(load[w].weight_bytes).c_str() : "?",
                  w < static_cast<int>(load.size()) ? decimal_bytes(load[w].peak_rss_bytes).c_str() : "?");
    }
    // The roofline: every weight byte is read once per step, except that a MoE layer reads only the
    // experts its tokens are routed to: top_k of num_experts per sequence, at most all of them (all
    // experts are the same size; for several sequences an upper bound, as they may share experts).
    double dense_bytes = 0, expert_bytes = 0;  // read per step: all but the experts, the routed experts
    const ModelConfig& config = engine->config();
    const int64_t routed = std::min<int64_t>(static_cast<int64_t>(config.top_k_experts) * sequences, config.num_experts);
    for (const WorkerLoadInfo& l : load) {
      const double experts = static_cast<double>(l.expert_weight_bytes);
      dense_bytes += static_cast<double>(l.weight_bytes) - experts;
      if (config.num_experts > 0) expert_bytes += experts * routed / config.num_experts;
    }
    const double weight_bytes = dense_bytes + expert_bytes;
    // The time the decode would take at each slice's bandwidth, against the time it took.
    double roofline_s = 0.0, bw_min = slices.front().bandwidth, bw_max = bw_min;
    for (const Slice& slice : slices) {
      roofline_s += slice.tokens * weight_bytes / slice.bandwidth;
      bw_min = std::min(bw_min, slice.bandwidth);
      bw_max = std::max(bw_max, slice.bandwidth);
    }
    const double bw = decode * weight_bytes / roofline_s;  // the slices' bandwidth, weighted by tokens
    std::printf("weights read per %s %s, machine read bandwidth %.1f GB/s (%.1f-%.1f over %zu slices, reading %s) -> roofline %.2f tok/s; measured %.2f tok/s = %.1f%% of the roofline%s\n",
                sequences == 1 ? "token" : "step", decimal_bytes(static_cast<uint64_t>(weight_bytes)).c_str(), bw / 1e9,
                bw_min / 1e9, bw_max / 1e9, slices.size(), decimal_bytes(baseline_bytes).c_str(), sequences * bw / weight_bytes, sequences * decode / decode_s,
                100.0 * roofline_s / decode_s,
                config.num_experts > 0
                    ? fmt::format(" (MoE: {}{} of {} experts per layer{})", sequences > 1 ? "at most " : "", routed,
                                  config.num_experts, sequences > 1 ? " and step" : "").c_str()
                    : "");
    // What memory left alone costs on its next touch, per 2 MiB region: on bare metal a cache miss,
    // on a VM whose host reclaims or tracks guest memory a fault that grows with the idle time. A
    // dense weight sits idle for one step between two reads; a routed expert, read by top_k of
    // num_experts per step, for num_experts / routed steps on average. Each region read pays the
    // price of its idle time once (the regions spread over the run's cores).
    constexpr double kRegion = static_cast<double>(huge_page_arena::kHugePage);
    const double step_s = decode_s / decode;
    const double hot_touch = bench::idle_touch_seconds(baseline_buffer, 0.0);
    auto idle_price = [&](double idle_s) { return std::max(0.0, bench::idle_touch_seconds(baseline_buffer, idle_s) - hot_touch); };
    const double dense_regions = std::ceil(dense_bytes / kRegion);
    const double dense_price = idle_price(step_s);
    double idle_cost_s = dense_regions * dense_price / baseline_threads;
    std::string expert_part;
    if (expert_bytes > 0) {
      const double expert_idle_s = step_s * static_cast<double>(config.num_experts) / static_cast<double>(routed);
      const double expert_regions = std::ceil(expert_bytes / kRegion), expert_price = idle_price(expert_idle_s);
      idle_cost_s += expert_regions * expert_price / baseline_threads;
      // (at least: an expert's matrices, packed one after another, mostly straddle a region boundary)
      expert_part = fmt::format("; routed experts untouched for {:.4g} ms on average: {:.1f} us, at least {:.0f} regions", 1e3 * expert_idle_s,
                                1e6 * expert_price, expert_regions);
    }
    const double roofline_idle_s = weight_bytes / bw + idle_cost_s;
    std::printf("memory untouched for one step (%.4g ms) costs %.1f us more per 2 MiB on its next touch than right after a touch "
                "(%.1f us), %.0f regions%s; over %d cores %.1f ms per %s -> roofline with it %.2f tok/s; measured = %.1f%% of it\n",
                1e3 * step_s, 1e6 * dense_price, 1e6 * hot_touch, dense_regions, expert_part.c_str(), baseline_threads,
                1e3 * idle_cost_s, sequences == 1 ? "token" : "step", sequences / roofline_idle_s, 100.0 * roofline_idle_s / step_s);
    engine->shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardlm_bench_step: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
