// Internal: element-wise kernels written once over a vector-traits type S (simd_math.h). Included
// by elementwise_avx2.cc / elementwise_avx512.cc inside a "#pragma GCC target" region, after all
// other includes, so every function here is compiled for that ISA.

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
constexpr int64_t kParallelElements = 1 << 16;  // below this, threads cost more than they save

// Sum of squares with a fixed order: 4 vector accumulators over full 4W strides, the remaining
// full vectors into the first, the tail into the second, then ((a0 + a1) + (a2 + a3)) and hsum.
template <class S>
float sum_squares(const float* x, int64_t dim) {
  constexpr int64_t W = S::kWidth;
  typename S::V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
  int64_t i = 0;
  for (; i + 4 * W <= dim; i += 4 * W) {
    auto v0 = S::load(x + i), v1 = S::load(x + i + W), v2 = S::load(x + i + 2 * W), v3 = S::load(x + i + 3 * W);
    a0 = S::fmadd(v0, v0, a0);
    a1 = S::fmadd(v1, v1, a1);
    a2 = S::fmadd(v2, v2, a2);
    a3 = S::fmadd(v3, v3, a3);
  }
  for (; i + W <= dim; i += W) {
    auto v = S::load(x + i);
    a0 = S::fmadd(v, v, a0);
  }
  if (i < dim) {
    auto v = S::load_tail(x + i, dim - i);
    a1 = S::fmadd(v, v, a1);
  }
  return S::hsum(S::add(S::add(a0, a1), S::add(a2, a3)));
}

template <class S>
void rms_norm_t(const float* x, const float* w, float* y, int64_t rows, int64_t dim, float eps) {
  constexpr int64_t W = S::kWidth;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const float mean = sum_squares<S>(xr, dim) / static_cast<float>(dim);
    const auto scale = S::set1(1.0f / std::sqrt(mean + eps));
    int64_t i = 0;
    if (w != nullptr) {
      for (; i + W <= dim; i += W) S::store(yr + i, S::mul(S::mul(S::load(xr + i), scale), S::load(w + i)));
      if (i < dim) {
        S::store_tail(yr + i, S::mul(S::mul(S::load_tail(xr + i, dim - i), scale), S::load_tail(w + i, dim - i)),
                      dim - i);
      }
    } else {
      for (; i + W <= dim; i += W) S::store(yr + i, S::mul(S::load(xr + i), scale));
      if (i < dim) S::store_tail(yr + i, S::mul(S::load_tail(xr + i, dim - i), scale), dim - i);
    }
  }
}

// gelu_tanh(g) = 0.5 g (1 + tanh(u)) = g / (1 + exp(-2u)): the same function, without the
// cancellation of 1 + tanh(u) for negative u.
template <class S>
typename S::V gelu_mul(typename S::V g, typename S::V up) {
  auto g3 = S::mul(S::mul(g, g), g);
  auto u = S::mul(S::set1(kSqrt2OverPi), S::fmadd(S::set1(kGeluCubic), g3, g));
  auto e = S::exp(S::mul(S::set1(-2.0f), u));
  return S::mul(S::div(g, S::add(S::set1(1.0f), e)), up);
}

template <class S>
void gelu_tanh_mul_t(const float* gate, const float* up, float* out, int64_t n) {
  constexpr int64_t W = S::kWidth;
  const int64_t full = n / W * W;
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < full; i += W) S::store(out + i, gelu_mul<S>(S::load(gate + i), S::load(up + i)));
  if (full < n) {
    const int64_t rest = n - full;
    S::store_tail(out + full, gelu_mul<S>(S::load_tail(gate + full, rest), S::load_tail(up + full, rest)), rest);
  }
}

template <class S>
void soft_cap_t(float* x, int64_t n, float cap) {
  constexpr int64_t W = S::kWidth;
  const auto c = S::set1(cap);
  const int64_t full = n / W * W;
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < full; i += W) S::store(x + i, S::mul(c, S::tanh(S::div(S::load(x + i), c))));
  if (full < n) {
    const int64_t rest = n - full;
    S::store_tail(x + full, S::mul(c, S::tanh(S::div(S::load_tail(x + full, rest), c))), rest);
  }
}

template <class S>
float row_max(const float* x, int64_t n) {
  constexpr int64_t W = S::kWidth;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  auto m = S::set1(neg_inf);
  int64_t i = 0;
  for (; i + W <= n; i += W) m = S::max(m, S::load(x + i));
  if (i < n) m = S::max(m, S::load_tail_fill(x + i, n - i, neg_inf));
  return S::hmax(m);
}

// Sum of exp(x - max) in a fixed order (lane-wise, then hsum); writes the exponentials to out
// when out is not null.
template <class S>
float sum_exp(const float* x, int64_t n, float max, float* out) {
  constexpr int64_t W = S::kWidth;
  const auto mv = S::set1(max);
  auto s = S::zero();
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    auto e = S::exp(S::sub(S::load(x + i), mv));
    if (out != nullptr) S::store(out + i, e);
    s = S::add(s, e);
  }
  if (i < n) {
    // -inf fill: exp gives exactly 0 in the unused lanes.
    auto e = S::exp(S::sub(S::load_tail_fill(x + i, n - i, -std::numeric_limits<float>::infinity()), mv));
    if (out != nullptr) S::store_tail(out + i, e, n - i);
    s = S::add(s, e);
  }
  return S::hsum(s);
}

template <class S>
void softmax_rows_t(float* x, int64_t rows, int64_t dim) {
  constexpr int64_t W = S::kWidth;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * dim;
    const float m = row_max<S>(xr, dim);
    const auto total = S::set1(sum_exp<S>(xr, dim, m, xr));
    int64_t i = 0;
    for (; i + W <= dim; i += W) S::store(xr + i, S::div(S::load(xr + i), total));
    if (i < dim) S::store_tail(xr + i, S::div(S::load_tail(xr + i, dim - i), total), dim - i);
  }
}

template <class S>
void exp_sums_t(const float* x, int64_t n, float max, float inv_t, double* sum, double* sum_t) {
  constexpr int64_t W = S::kWidth;
  constexpr int64_t kFlush = 256;  // values per float partial sum
  const auto mv = S::set1(max), iv = S::set1(inv_t);
  const bool two = inv_t != 1.0f;
  double total = 0.0, total_t = 0.0;
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = std::min(n, b + kFlush);
    auto s = S::zero(), st = S::zero();
    int64_t i = b;
    for (; i + W <= e; i += W) {
      const auto d = S::sub(S::load(x + i), mv);
      s = S::add(s, S::exp(d));
      if (two) st = S::add(st, S::exp(S::mul(d, iv)));
    }
    if (i < e) {
      // -inf fill: exp gives exactly 0 in the unused lanes.
      const auto d = S::sub(S::load_tail_fill(x + i, e - i, -std::numeric_limits<float>::infinity()), mv);
      s = S::add(s, S::exp(d));
      if (two) st = S::add(st, S::exp(S::mul(d, iv)));
    }
    total += S::hsum(s);
    if (two) total_t += S::hsum(st);
  }
  *sum = total;
  *sum_t = two ? total_t : total;
}

template <class S>
float log_sum_exp_t(const float* x, int64_t n) {
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  const float m = row_max<S>(x, n);
  if (std::isinf(m)) return m;  // all -inf -> -inf; any +inf -> +inf
  if (std::isnan(m)) return m;
  return m + std::log(sum_exp<S>(x, n, m, nullptr));
}

}  // namespace
