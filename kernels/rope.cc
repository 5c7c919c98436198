// Rotary position embedding (half-split layout), with Hugging Face's f32 arithmetic: inv_freq in
// f32, angle = f32(position) * inv_freq in f32, cos/sin of that f32 angle (evaluated in double and
// rounded, i.e. correctly rounded in practice), y = x·cos + rotate_half(x)·sin without FMA.
#include "kernels/rope.h"

#include <omp.h>

#include <cmath>

#include "common/error.h"

namespace shardlm {
namespace {

void check_args(int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim) {
  if (rows < 0 || n_heads < 0) fail("rope_apply: negative shape (rows {}, heads {})", rows, n_heads);
  if (head_dim <= 0 || head_dim % 2 != 0) fail("rope_apply: head_dim must be positive and even, got {}", head_dim);
  if (row_stride < n_heads * head_dim) {
    fail("rope_apply: row stride {} is smaller than n_heads * head_dim = {}", row_stride, n_heads * head_dim);
  }
}

inline float angle_of(int32_t position, float inv_freq) { return static_cast<float>(position) * inv_freq; }

// One head vector: pairs (j, j + half) rotated by the angle whose cos/sin are given.
inline void rotate_pair(float* xh, int64_t j, int64_t half, float c, float s) {
  const float a = xh[j];
  const float b = xh[j + half];
  xh[j] = a * c + (-b) * s;
  xh[j + half] = b * c + a * s;
}

}  // namespace

std::vector<float> rope_inv_freq(int64_t head_dim, double theta, int64_t rotary_pairs) {
  if (head_dim <= 0 || head_dim % 2 != 0) fail("rope_inv_freq: head_dim must be positive and even, got {}", head_dim);
  if (rotary_pairs < 0 || rotary_pairs > head_dim / 2) {
    fail("rope_inv_freq: rotary_pairs {} not in [0, head_dim/2 = {}]", rotary_pairs, head_dim / 2);
  }
  if (!(theta > 0.0)) fail("rope_inv_freq: theta must be positive, got {}", theta);
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2), 0.0f);
  // As torch: exponent = f32(2j) / f32(head_dim); base^exponent in f32; 1 / that in f32.
  const float base = static_cast<float>(theta);
  for (int64_t j = 0; j < rotary_pairs; ++j) {
    const float exponent = static_cast<float>(2 * j) / static_cast<float>(head_dim);
    const float power = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    inv_freq[static_cast<size_t>(j)] = 1.0f / power;
  }
  return inv_freq;
}

void rope_apply_ref(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                    const int32_t* positions, const float* inv_freq) {
  check_args(rows, row_stride, n_heads, head_dim);
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + r * row_stride + h * head_dim;
      for (int64_t j = 0; j < half; ++j) {
        if (inv_freq[j] == 0.0f) continue;  // identity pair
        const double angle = angle_of(positions[r], inv_freq[j]);
        rotate_pair(xh, j, half, static_cast<float>(std::cos(angle)), static_cast<float>(std::sin(angle)));
      }
    }
  }
}

void rope_apply(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                const int32_t* positions, const float* inv_freq) {
  check_args(rows, row_stride, n_heads, head_dim);
  const int64_t half = head_dim / 2;
  // cos/sin once per row, shared by all heads of the row.
#pragma omp parallel if (rows * n_heads * head_dim >= (1 << 16))
  {
    std::vector<float> cos_row(static_cast<size_t>(half)), sin_row(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      int64_t active = 0;
      for (int64_t j = 0; j < half; ++j) {
        if (inv_freq[j] == 0.0f) continue;
        const double angle = angle_of(positions[r], inv_freq[j]);
        cos_row[static_cast<size_t>(j)] = static_cast<float>(std::cos(angle));
        sin_row[static_cast<size_t>(j)] = static_cast<float>(std::sin(angle));
        active = j + 1;
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* xh = x + r * row_stride + h * head_dim;
        for (int64_t j = 0; j < active; ++j) {
          if (inv_freq[j] == 0.0f) continue;
          rotate_pair(xh, j, half, cos_row[static_cast<size_t>(j)], sin_row[static_cast<size_t>(j)]);
        }
      }
    }
  }
}

}  // namespace shardlm
