// Fused conv1d(1->C) - BatchNorm1d - ReLU - conv1d(C->1) over K independent seeds, forward and backward.
//
// Shapes: u (K, B, N); w1 (K, C, k); b1, gamma, beta (K, C); w2 (K, C, k); b2 (K); padding p = k // 2;
// k odd, 1 <= k <= kMaxK. Tensors: CPU, contiguous, all float32 or all float64.
//
// Design (see also harness/batched/fused_cnn.py):
// * Work items are (seed, chunk of kChunkRows batch rows), run in parallel with OpenMP on at most
//   at::get_num_threads() threads. Every reduction is done per item in a fixed order (the vectorized loop's
//   lanes, then a fixed fold), and item partials are combined per seed in chunk order in double, so results
//   are bitwise independent of the thread count, of K and of the other seeds' values.
// * A chunk is laid out as one long signal: row r occupies [r*L, (r+1)*L), L = N + 2p, with its data at
//   r*L + p .. r*L + p + N - 1 and zeros around it. Convolving the long signal gives each row's zero-padded
//   convolution at its data positions; a 0/1 mask removes the positions between rows. Loops run over the
//   chunk length rounded up to kVec (no scalar epilogues), with zeroed margins on both sides.
// * Channels are the outer loop inside an item; per channel, conv1 + BN + ReLU (+ the backward terms) are
//   one fused, vectorized loop with the conv taps and the reductions (BN statistics, dW, dgamma, dbeta) in
//   registers. Only conv2's input (forward) and dh (backward, for du) are stored, one channel at a time, so
//   the working set stays in L1.
// * Hidden activations are never stored across passes: every pass recomputes conv1 from u (k FMAs per
//   hidden value). Training forward = 2 passes (BN statistics, output); training backward = 1 full pass plus
//   a light channel-free correction of du (see the backward section). Eval: 1 + 1.
// * BatchNorm statistics: exact two-pass mean and sum of squared deviations per (item, channel), merged per
//   seed in double as M2 = sum_q M2_q + sum_q n_q (mean_q - mean)^2 (no E[x^2] - E[x]^2 cancellation).
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kChunkRows = 16;  // fixes the reduction order: never depends on the thread count
constexpr int64_t kVec = 16;        // loop lengths are multiples of this
constexpr int64_t kMargin = 16;     // zero elements on both sides of a chunk buffer (>= kMaxK / 2)
constexpr int kMaxK = 7;

// 64-byte GCC vector types: AVX-512 registers where available, split by the compiler otherwise. Loops step
// by whole vectors (lengths are multiples of kVec); reductions keep vector accumulators (fixed lane order).
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float v __attribute__((vector_size(64)));
  typedef float vu __attribute__((vector_size(64), aligned(4), may_alias));
  static constexpr int W = 16;
};
template <>
struct Simd<double> {
  typedef double v __attribute__((vector_size(64)));
  typedef double vu __attribute__((vector_size(64), aligned(8), may_alias));
  static constexpr int W = 8;
};
template <typename T>
using vec = typename Simd<T>::v;
template <typename T>
inline vec<T> ld(const T* p) {
  return *reinterpret_cast<const typename Simd<T>::vu*>(p);
}
template <typename T>
inline void st(T* p, vec<T> v) {
  *reinterpret_cast<typename Simd<T>::vu*>(p) = v;
}
template <typename T>
inline T hsum(vec<T> v) {
  T s = 0;
  for (int l = 0; l < Simd<T>::W; ++l) s += v[l];
  return s;
}
static_assert(kVec % Simd<float>::W == 0 && kVec % Simd<double>::W == 0, "kVec must hold whole vectors");

struct Dims {
  int64_t K, B, N, C, k, p, L;
  int64_t chunks() const { return (B + kChunkRows - 1) / kChunkRows; }
  int64_t span(int64_t rows) const { return (rows * L + kVec - 1) / kVec * kVec; }
};

struct Ptrs {  // all seeds; typed per call
  const void *u, *w1, *b1, *gamma, *beta, *w2, *b2, *mean, *invstd, *gout;
};

// Per-thread chunk buffers, each kMargin + span(kChunkRows) + kMargin long and used through base pointers
// at offset kMargin. x (input rows), g (output-gradient rows): data positions are written per chunk, the rest
// is zero. mask: 1 on the current chunk's data positions. a, dh: one channel's conv2 input / BN-input
// gradient, written on [0, span) with zeros off the data positions (the statistics pass keeps conv1's output
// in a instead). acc: the output (or du) accumulator. Values past a short chunk's span may be stale; they
// only reach output positions that are never stored.
template <typename T>
struct Scratch {
  const Dims& d;
  int64_t rows = -1;  // rows of the chunk the mask (and the zero tails of x and g) were set up for
  std::vector<T> vmask, vx, vg, va, vdh, vacc;
  T *mask, *x, *g, *a, *dh, *acc;
  explicit Scratch(const Dims& dd) : d(dd) {
    const size_t n = static_cast<size_t>(2 * kMargin + d.span(kChunkRows));
    for (auto* v : {&vmask, &vx, &vg, &va, &vdh, &vacc}) v->assign(n, T(0));
    mask = vmask.data() + kMargin;
    x = vx.data() + kMargin;
    g = vg.data() + kMargin;
    a = va.data() + kMargin;
    dh = vdh.data() + kMargin;
    acc = vacc.data() + kMargin;
  }
  // Loads rows [b0, b1) of u (and of gout) into the chunk layout; returns the loop length.
  int64_t load(const T* u, const T* gout, int64_t b0, int64_t b1) {
    const int64_t nr = b1 - b0, N = d.N, L = d.L, p = d.p;
    if (nr != rows) {  // only for the first and the short last chunk: stale rows must not leak in
      std::fill(vmask.begin(), vmask.end(), T(0));
      for (int64_t r = 0; r < nr; ++r) std::fill(mask + r * L + p, mask + r * L + p + N, T(1));
      std::fill(x + nr * L, vx.data() + vx.size(), T(0));
      std::fill(g + nr * L, vg.data() + vg.size(), T(0));
      rows = nr;
    }
    for (int64_t r = 0; r < nr; ++r) {
      copy_row(u + (b0 + r) * N, x + r * L + p, N);
      if (gout) copy_row(gout + (b0 + r) * N, g + r * L + p, N);
    }
    return d.span(nr);
  }
  void store(const T* src, int64_t b0, int64_t b1, T* dst) const {
    for (int64_t b = b0; b < b1; ++b) copy_row(src + (b - b0) * d.L + d.p, dst + b * d.N, d.N);
  }
  // Rows are short (~50): an inline vectorized copy beats a memmove call.
  static inline void copy_row(const T* __restrict src, T* __restrict dst, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
};

// One channel of one seed: conv taps and BN constants, hoisted into registers.
template <typename T, int KS>
struct Channel {
  T w1[KS], w2[KS];
  T b1, mean, invstd, gamma, beta;
  Channel(const Dims& d, const Ptrs& P, int64_t s, int64_t c, bool with_stats) {
    const T* pw1 = static_cast<const T*>(P.w1) + (s * d.C + c) * KS;
    const T* pw2 = static_cast<const T*>(P.w2) + (s * d.C + c) * KS;
    for (int j = 0; j < KS; ++j) {
      w1[j] = pw1[j];
      w2[j] = pw2[j];
    }
    const int64_t sc = s * d.C + c;
    b1 = static_cast<const T*>(P.b1)[sc];
    gamma = static_cast<const T*>(P.gamma)[sc];
    beta = static_cast<const T*>(P.beta)[sc];
    mean = with_stats ? static_cast<const T*>(P.mean)[sc] : T(0);
    invstd = with_stats ? static_cast<const T*>(P.invstd)[sc] : T(1);
  }
  // conv1 output at positions i .. i + W - 1 of the chunk signal x
  inline vec<T> conv1(const T* x, int64_t i) const {
    constexpr int p = KS / 2;
    vec<T> v = vec<T>{} + b1;
    for (int j = 0; j < KS; ++j) v += w1[j] * ld(x + i + j - p);
    return v;
  }
};

// ---------------------------------------------------------------- forward

// BN statistics pass: per channel (count, mean, M2) of the chunk's data positions (exact two-pass).
template <typename T, int KS>
void stats_item(const Dims& d, const Ptrs& P, int64_t s, int64_t b0, int64_t b1, Scratch<T>& S, double* out) {
  using V = vec<T>;
  constexpr int W = Simd<T>::W;
  const int64_t n = S.load(static_cast<const T*>(P.u) + s * d.B * d.N, nullptr, b0, b1);
  const T* x = S.x;
  const T* mask = S.mask;
  T* h = S.a;
  const T cnt = static_cast<T>((b1 - b0) * d.N);
  for (int64_t c = 0; c < d.C; ++c) {
    const Channel<T, KS> ch(d, P, s, c, false);
    V sum = {};
    for (int64_t i = 0; i < n; i += W) {
      const V v = ch.conv1(x, i);
      st(h + i, v);
      sum += ld(mask + i) > T(0) ? v : V{};
    }
    const T m = hsum<T>(sum) / cnt;
    V m2 = {};
    for (int64_t i = 0; i < n; i += W) {
      const V v = ld(mask + i) > T(0) ? ld(h + i) - m : V{};
      m2 += v * v;
    }
    out[c * 3] = static_cast<double>(cnt);
    out[c * 3 + 1] = static_cast<double>(m);
    out[c * 3 + 2] = static_cast<double>(hsum<T>(m2));
  }
}

// Output pass: out = b2 + sum_{c, j} w2[c][j] * a_c[i + j - p], a_c = relu(BN(conv1_c(x))).
template <typename T, int KS>
void output_item(const Dims& d, const Ptrs& P, int64_t s, int64_t b0, int64_t b1, Scratch<T>& S, T* out) {
  using V = vec<T>;
  constexpr int W = Simd<T>::W, p = KS / 2;
  const int64_t n = S.load(static_cast<const T*>(P.u) + s * d.B * d.N, nullptr, b0, b1);
  const T* x = S.x;
  const T* mask = S.mask;
  T* a = S.a;
  T* acc = S.acc;
  const V b2 = V{} + static_cast<const T*>(P.b2)[s];
  for (int64_t i = 0; i < n; i += W) st(acc + i, b2);
  for (int64_t c = 0; c < d.C; ++c) {
    const Channel<T, KS> ch(d, P, s, c, true);
    for (int64_t i = 0; i < n; i += W) {
      const V z = (ch.conv1(x, i) - ch.mean) * ch.invstd * ch.gamma + ch.beta;
      // ReLU that keeps NaN (as torch.relu does), so a diverging seed shows a non-finite loss.
      st(a + i, ((ld(mask + i) > T(0)) & ((z > T(0)) | (z != z))) ? z : V{});
    }
    for (int64_t i = 0; i < n; i += W) {
      V v = ld(acc + i);
      for (int j = 0; j < KS; ++j) v += ch.w2[j] * ld(a + i + j - p);
      st(acc + i, v);
    }
  }
  S.store(acc, b0, b1, out);
}

// ---------------------------------------------------------------- backward
//
// Per channel: da[i] = sum_j w2[j] g[i - j + p]; dz = da where the ReLU is active (0 off the data);
// dW2[j] = sum_i a[i] g[i - j + p]; dbeta = sum dz; dgamma = sum dz xh; and the BN-input gradient
// dh = coef (dz - md - mx xh) on the data (coef = gamma invstd, md = dbeta / M, mx = dgamma / M);
// dW1[j] = sum_i dh[i] x[i + j - p]; db1 = sum dh; du[i] = sum_{c, j} w1[c][j] dh_c[i - j + p].
//
// Eval (md = mx = 0): one pass. Training: md and mx are per-seed totals, so dh is split into its three terms
// and one pass collects everything that does not need them (TRAIN partials below, and du's dz term
// sum_c coef_c conv1^T(dz_c), written to du). After the per-seed reduction, dW1 and db1 are assembled in
// double, and a light per-row pass (train_du_item) subtracts du's md and xh terms: both are channel-free
// convolutions of x and the mask once summed over channels, with taps K2[j][j'] = sum_c al_c w1c[j] w1c[j']
// and K1[j] = sum_c (al_c (b1c - mean_c) + coef_c md_c) w1c[j], al_c = coef_c mx_c invstd_c.
//
// Item partials. pa (both modes): dW2 (C*k), dgamma (C), dbeta (C), db2 (1).
// pb, eval: dW1 (C*k), db1 (C). pb, training: S_dzx (C*k) = sum dz x_j, S_xhx (C*k) = sum_data xh x_j,
// S_xh (C) = sum_data xh, S_x (k) = sum_data x_j, with x_j[i] = x[i + j - p].
template <typename T, int KS, bool TRAIN>
void backward_item(const Dims& d, const Ptrs& P, int64_t s, int64_t b0, int64_t b1, Scratch<T>& S, double* pa,
                   double* pb, T* du) {
  using V = vec<T>;
  constexpr int W = Simd<T>::W, p = KS / 2;
  const int64_t BN = d.B * d.N, C = d.C, ck = C * KS;
  const int64_t n = S.load(static_cast<const T*>(P.u) + s * BN, static_cast<const T*>(P.gout) + s * BN, b0, b1);
  const T* x = S.x;
  const T* g = S.g;
  const T* mask = S.mask;
  T* dh = S.dh;
  T* acc = S.acc;
  {
    V sg = {};
    for (int64_t i = 0; i < n; i += W) {
      sg += ld(g + i);
      st(acc + i, V{});
    }
    pa[ck + 2 * C] = static_cast<double>(hsum<T>(sg));
  }
  if constexpr (TRAIN) {
    for (int j = 0; j < KS; ++j) {
      V sx = {};
      for (int64_t i = 0; i < n; i += W) sx += ld(mask + i) > T(0) ? ld(x + i + j - p) : V{};
      pb[2 * ck + C + j] = static_cast<double>(hsum<T>(sx));
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    const Channel<T, KS> ch(d, P, s, c, true);
    const T coef = ch.gamma * ch.invstd;
    V r0 = {}, r1 = {}, r2 = {}, r3 = {}, r4 = {}, r5 = {}, r6 = {};  // dW2[c][j]
    V q0 = {}, q1 = {}, q2 = {}, q3 = {}, q4 = {}, q5 = {}, q6 = {};  // eval: dW1[c][j]; training: S_dzx
    V t0 = {}, t1 = {}, t2 = {}, t3 = {}, t4 = {}, t5 = {}, t6 = {};  // training: S_xhx
    V sb = {}, sgm = {}, sh = {};  // dbeta, dgamma; eval: db1, training: S_xh
    for (int64_t i = 0; i < n; i += W) {
      const auto valid = ld(mask + i) > T(0);
      const V xv = (ch.conv1(x, i) - ch.mean) * ch.invstd;
      const V z = xv * ch.gamma + ch.beta;
      const auto active = valid & (z > T(0));
      V gj[KS];
      V da = {};
      for (int j = 0; j < KS; ++j) {
        gj[j] = ld(g + i - j + p);
        da += ch.w2[j] * gj[j];
      }
      const V dz = active ? da : V{};
      const V av = active ? z : V{};
      if constexpr (KS > 0) r0 += av * gj[0];
      if constexpr (KS > 1) r1 += av * gj[1];
      if constexpr (KS > 2) r2 += av * gj[2];
      if constexpr (KS > 3) r3 += av * gj[3];
      if constexpr (KS > 4) r4 += av * gj[4];
      if constexpr (KS > 5) r5 += av * gj[5];
      if constexpr (KS > 6) r6 += av * gj[6];
      sb += dz;
      sgm += dz * xv;
      V xj[KS];
      for (int j = 0; j < KS; ++j) xj[j] = ld(x + i + j - p);
      const V hv = coef * dz;  // eval: all of dh; training: its dz term
      st(dh + i, hv);
      if constexpr (TRAIN) {
        const V xm = valid ? xv : V{};
        sh += xm;
        if constexpr (KS > 0) q0 += dz * xj[0], t0 += xm * xj[0];
        if constexpr (KS > 1) q1 += dz * xj[1], t1 += xm * xj[1];
        if constexpr (KS > 2) q2 += dz * xj[2], t2 += xm * xj[2];
        if constexpr (KS > 3) q3 += dz * xj[3], t3 += xm * xj[3];
        if constexpr (KS > 4) q4 += dz * xj[4], t4 += xm * xj[4];
        if constexpr (KS > 5) q5 += dz * xj[5], t5 += xm * xj[5];
        if constexpr (KS > 6) q6 += dz * xj[6], t6 += xm * xj[6];
      } else {
        sh += hv;
        if constexpr (KS > 0) q0 += hv * xj[0];
        if constexpr (KS > 1) q1 += hv * xj[1];
        if constexpr (KS > 2) q2 += hv * xj[2];
        if constexpr (KS > 3) q3 += hv * xj[3];
        if constexpr (KS > 4) q4 += hv * xj[4];
        if constexpr (KS > 5) q5 += hv * xj[5];
        if constexpr (KS > 6) q6 += hv * xj[6];
      }
    }
    const V r[kMaxK] = {r0, r1, r2, r3, r4, r5, r6}, q[kMaxK] = {q0, q1, q2, q3, q4, q5, q6};
    for (int j = 0; j < KS; ++j) {
      pa[c * KS + j] = static_cast<double>(hsum<T>(r[j]));
      pb[c * KS + j] = static_cast<double>(hsum<T>(q[j]));
    }
    pa[ck + c] = static_cast<double>(hsum<T>(sgm));
    pa[ck + C + c] = static_cast<double>(hsum<T>(sb));
    if constexpr (TRAIN) {
      const V t[kMaxK] = {t0, t1, t2, t3, t4, t5, t6};
      for (int j = 0; j < KS; ++j) pb[ck + c * KS + j] = static_cast<double>(hsum<T>(t[j]));
      pb[2 * ck + c] = static_cast<double>(hsum<T>(sh));
    } else {
      pb[ck + c] = static_cast<double>(hsum<T>(sh));
    }
    for (int64_t i = 0; i < n; i += W) {
      V v = ld(acc + i);
      for (int j = 0; j < KS; ++j) v += ch.w1[j] * ld(dh + i - j + p);
      st(acc + i, v);
    }
  }
  S.store(acc, b0, b1, du);
}

// Training, second pass: du[i] -= sum_j mask[i - j + p] (K1[j] + sum_j' K2[j][j'] x[i - j + j']).
template <typename T, int KS>
void train_du_item(const Dims& d, const Ptrs& P, int64_t s, int64_t b0, int64_t b1, Scratch<T>& S, const T* k2,
                   const T* k1, T* du) {
  using V = vec<T>;
  constexpr int W = Simd<T>::W, p = KS / 2;
  const int64_t n = S.load(static_cast<const T*>(P.u) + s * d.B * d.N, nullptr, b0, b1);
  const T* x = S.x;
  const T* mask = S.mask;
  T kk[KS][KS], kb[KS];
  for (int j = 0; j < KS; ++j) {
    kb[j] = k1[j];
    for (int jj = 0; jj < KS; ++jj) kk[j][jj] = k2[j * KS + jj];
  }
  for (int64_t i = 0; i < n; i += W) {
    V cv = {};
    for (int j = 0; j < KS; ++j) {
      V inner = V{} + kb[j];
      for (int jj = 0; jj < KS; ++jj) inner += kk[j][jj] * ld(x + i - j + jj);
      cv += ld(mask + i - j + p) > T(0) ? inner : V{};
    }
    st(S.acc + i, cv);
  }
  for (int64_t b = b0; b < b1; ++b) {
    const T* c = S.acc + (b - b0) * d.L + d.p;
    T* o = du + b * d.N;
#pragma omp simd
    for (int64_t m = 0; m < d.N; ++m) o[m] -= c[m];
  }
}

// ---------------------------------------------------------------- drivers

template <typename F>
void parallel_items(int64_t items, F&& body) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), items)));
  if (nt == 1) {
    body(0, items);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), nth = omp_get_num_threads();
    const int64_t lo = items * t / nth, hi = items * (t + 1) / nth;
    if (lo < hi) body(lo, hi);
  }
}

// Calls body(seed, b0, b1, item) for every item of [lo, hi).
template <typename F>
inline void for_items(const Dims& d, int64_t lo, int64_t hi, F&& body) {
  const int64_t nch = d.chunks();
  for (int64_t it = lo; it < hi; ++it) {
    const int64_t b0 = (it % nch) * kChunkRows;
    body(it / nch, b0, std::min(d.B, b0 + kChunkRows), it);
  }
}

Dims make_dims(const torch::Tensor& u, const torch::Tensor& w1) {
  Dims d;
  d.K = u.size(0);
  d.B = u.size(1);
  d.N = u.size(2);
  d.C = w1.size(1);
  d.k = w1.size(2);
  d.p = d.k / 2;
  d.L = d.N + 2 * d.p;
  return d;
}

void check_inputs(const std::vector<torch::Tensor>& ts) {
  for (const auto& t : ts) {
    TORCH_CHECK(t.device().is_cpu(), "fused_cnn: CPU tensors only");
    TORCH_CHECK(t.is_contiguous(), "fused_cnn: contiguous tensors only");
    TORCH_CHECK(t.scalar_type() == ts[0].scalar_type(), "fused_cnn: all tensors must have one dtype");
  }
  const auto& u = ts[0];
  const auto& w1 = ts[1];
  TORCH_CHECK(u.dim() == 3 && w1.dim() == 3 && w1.size(0) == u.size(0), "fused_cnn: bad shapes");
  TORCH_CHECK(w1.size(2) % 2 == 1 && w1.size(2) <= kMaxK, "fused_cnn: odd kernel size <= 7 required");
  const int64_t KC = w1.size(0) * w1.size(1);
  // ts: u, w1, b1, gamma, beta, w2, b2, then two (K, C) tensors (eval statistics or mean/invstd; may be empty
  // in training), then optionally grad_out
  const std::vector<int64_t> numel{u.numel(), w1.numel(), KC, KC, KC, w1.numel(), w1.size(0)};
  for (size_t i = 0; i < numel.size(); ++i) TORCH_CHECK(ts[i].numel() == numel[i], "fused_cnn: bad shapes");
  for (size_t i = 7; i < 9; ++i) TORCH_CHECK(ts[i].numel() == KC || ts[i].numel() == 0, "fused_cnn: bad shapes");
  if (ts.size() > 9) TORCH_CHECK(ts[9].sizes() == u.sizes(), "fused_cnn: grad_out must have u's shape");
}

Ptrs make_ptrs(const std::vector<torch::Tensor>& in) {
  return {in[0].data_ptr(), in[1].data_ptr(), in[2].data_ptr(), in[3].data_ptr(), in[4].data_ptr(),
          in[5].data_ptr(), in[6].data_ptr(), nullptr, nullptr, nullptr};
}

template <typename T, int KS>
std::vector<torch::Tensor> forward_impl(const Dims& d, const std::vector<torch::Tensor>& in,
                                        const torch::Tensor& rmean, const torch::Tensor& rvar, bool training,
                                        double eps) {
  auto opts = in[0].options();
  auto mean = torch::empty({d.K, d.C}, opts), invstd = torch::empty({d.K, d.C}, opts);
  auto var_u = torch::empty({d.K, d.C}, opts), out = torch::empty({d.K, d.B, d.N}, opts);
  T *pm = mean.data_ptr<T>(), *pis = invstd.data_ptr<T>(), *pvu = var_u.data_ptr<T>(), *po = out.data_ptr<T>();
  Ptrs P = make_ptrs(in);
  const int64_t nch = d.chunks(), items = d.K * nch;
  if (training) {
    std::vector<double> st(static_cast<size_t>(items * d.C * 3));
    parallel_items(items, [&](int64_t lo, int64_t hi) {
      Scratch<T> S(d);
      for_items(d, lo, hi, [&](int64_t s, int64_t b0, int64_t b1, int64_t it) {
        stats_item<T, KS>(d, P, s, b0, b1, S, st.data() + it * d.C * 3);
      });
    });
    const double total = static_cast<double>(d.B * d.N);
    for (int64_t s = 0; s < d.K; ++s)
      for (int64_t c = 0; c < d.C; ++c) {
        double msum = 0;
        for (int64_t q = 0; q < nch; ++q) {
          const double* r = st.data() + ((s * nch + q) * d.C + c) * 3;
          msum += r[0] * r[1];
        }
        const double m = msum / total;
        double m2 = 0;
        for (int64_t q = 0; q < nch; ++q) {
          const double* r = st.data() + ((s * nch + q) * d.C + c) * 3;
          const double dm = r[1] - m;
          m2 += r[2] + r[0] * dm * dm;
        }
        pm[s * d.C + c] = static_cast<T>(m);
        pis[s * d.C + c] = static_cast<T>(1.0 / std::sqrt(m2 / total + eps));
        pvu[s * d.C + c] = static_cast<T>(total > 1 ? m2 / (total - 1) : NAN);
      }
  } else {
    const T *prm = rmean.data_ptr<T>(), *prv = rvar.data_ptr<T>();
    for (int64_t i = 0; i < d.K * d.C; ++i) {
      pm[i] = prm[i];
      pis[i] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(prv[i]) + eps));
      pvu[i] = prv[i];
    }
  }
  P.mean = pm;
  P.invstd = pis;
  parallel_items(items, [&](int64_t lo, int64_t hi) {
    Scratch<T> S(d);
    for_items(d, lo, hi, [&](int64_t s, int64_t b0, int64_t b1, int64_t) {
      output_item<T, KS>(d, P, s, b0, b1, S, po + s * d.B * d.N);
    });
  });
  return {out, mean, invstd, var_u};
}

template <typename T, int KS>
std::vector<torch::Tensor> backward_impl(const Dims& d, const torch::Tensor& gout,
                                         const std::vector<torch::Tensor>& in, const torch::Tensor& mean,
                                         const torch::Tensor& invstd, bool training) {
  auto opts = in[0].options();
  auto du = torch::empty({d.K, d.B, d.N}, opts);
  auto dw1 = torch::empty({d.K, d.C, d.k}, opts), db1 = torch::empty({d.K, d.C}, opts);
  auto dg = torch::empty({d.K, d.C}, opts), dbt = torch::empty({d.K, d.C}, opts);
  auto dw2 = torch::empty({d.K, d.C, d.k}, opts), db2 = torch::empty({d.K}, opts);
  Ptrs P = make_ptrs(in);
  P.mean = mean.data_ptr();
  P.invstd = invstd.data_ptr();
  P.gout = gout.data_ptr();
  T* pdu = du.data_ptr<T>();
  const int64_t C = d.C, nch = d.chunks(), items = d.K * nch, ck = C * KS, BN = d.B * d.N;
  const int64_t na = ck + 2 * C + 1, nb = training ? 2 * ck + C + KS : ck + C;
  std::vector<double> pa(static_cast<size_t>(items * na)), pb(static_cast<size_t>(items * nb));
  parallel_items(items, [&](int64_t lo, int64_t hi) {
    Scratch<T> S(d);
    for_items(d, lo, hi, [&](int64_t s, int64_t b0, int64_t b1, int64_t it) {
      T* o = pdu + s * BN;
      if (training)
        backward_item<T, KS, true>(d, P, s, b0, b1, S, pa.data() + it * na, pb.data() + it * nb, o);
      else
        backward_item<T, KS, false>(d, P, s, b0, b1, S, pa.data() + it * na, pb.data() + it * nb, o);
    });
  });
  auto reduce = [&](const std::vector<double>& part, int64_t width) {  // per seed, in chunk order
    std::vector<double> tot(static_cast<size_t>(d.K * width), 0.0);
    for (int64_t s = 0; s < d.K; ++s)
      for (int64_t q = 0; q < nch; ++q)
        for (int64_t i = 0; i < width; ++i) tot[s * width + i] += part[(s * nch + q) * width + i];
    return tot;
  };
  const std::vector<double> ta = reduce(pa, na), tb = reduce(pb, nb);
  T *pdw1 = dw1.data_ptr<T>(), *pdb1 = db1.data_ptr<T>(), *pdg = dg.data_ptr<T>(), *pdbt = dbt.data_ptr<T>(),
    *pdw2 = dw2.data_ptr<T>(), *pdb2 = db2.data_ptr<T>();
  std::vector<T> k2(static_cast<size_t>(d.K * KS * KS)), k1(static_cast<size_t>(d.K * KS));
  const T *pw1 = in[1].data_ptr<T>(), *pb1 = in[2].data_ptr<T>(), *pg = in[3].data_ptr<T>(),
          *pm = mean.data_ptr<T>(), *pis = invstd.data_ptr<T>();
  for (int64_t s = 0; s < d.K; ++s) {
    const double *a = ta.data() + s * na, *b = tb.data() + s * nb;
    for (int64_t i = 0; i < ck; ++i) pdw2[s * ck + i] = static_cast<T>(a[i]);
    for (int64_t c = 0; c < C; ++c) {
      pdg[s * C + c] = static_cast<T>(a[ck + c]);
      pdbt[s * C + c] = static_cast<T>(a[ck + C + c]);
    }
    pdb2[s] = static_cast<T>(a[ck + 2 * C]);
    if (!training) {
      for (int64_t i = 0; i < ck; ++i) pdw1[s * ck + i] = static_cast<T>(b[i]);
      for (int64_t c = 0; c < C; ++c) pdb1[s * C + c] = static_cast<T>(b[ck + c]);
      continue;
    }
    std::vector<double> kk(KS * KS, 0.0), kb(KS, 0.0);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t sc = s * C + c;
      const double coef = static_cast<double>(pg[sc]) * static_cast<double>(pis[sc]);
      const double md = a[ck + C + c] / static_cast<double>(BN), mx = a[ck + c] / static_cast<double>(BN);
      for (int j = 0; j < KS; ++j)
        pdw1[sc * KS + j] = static_cast<T>(coef * (b[c * KS + j] - md * b[2 * ck + C + j] - mx * b[ck + c * KS + j]));
      pdb1[sc] = static_cast<T>(coef * (a[ck + C + c] - md * static_cast<double>(BN) - mx * b[2 * ck + c]));
      const double al = coef * mx * static_cast<double>(pis[sc]);
      const double off = al * (static_cast<double>(pb1[sc]) - static_cast<double>(pm[sc])) + coef * md;
      const T* w = pw1 + sc * KS;
      for (int j = 0; j < KS; ++j) {
        kb[j] += off * static_cast<double>(w[j]);
        for (int jj = 0; jj < KS; ++jj) kk[j * KS + jj] += al * static_cast<double>(w[j]) * static_cast<double>(w[jj]);
      }
    }
    for (int j = 0; j < KS; ++j) {
      k1[s * KS + j] = static_cast<T>(kb[j]);
      for (int jj = 0; jj < KS; ++jj) k2[(s * KS + j) * KS + jj] = static_cast<T>(kk[j * KS + jj]);
    }
  }
  if (training) {
    parallel_items(items, [&](int64_t lo, int64_t hi) {
      Scratch<T> S(d);
      for_items(d, lo, hi, [&](int64_t s, int64_t b0, int64_t b1, int64_t) {
        train_du_item<T, KS>(d, P, s, b0, b1, S, k2.data() + s * KS * KS, k1.data() + s * KS, pdu + s * BN);
      });
    });
  }
  return {du, dw1, db1, dg, dbt, dw2, db2};
}

template <typename T, typename F>
auto dispatch_k(int64_t k, F&& f) {
  switch (k) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    default:
      return f(std::integral_constant<int, 7>{});
  }
}

}  // namespace

// (u, w1, b1, gamma, beta, w2, b2, running_mean, running_var, training, eps) -> (out, mean, invstd, var_unbiased);
// in eval mode mean and var_unbiased are the running stats.
std::vector<torch::Tensor> fused_forward(torch::Tensor u, torch::Tensor w1, torch::Tensor b1, torch::Tensor gamma,
                                         torch::Tensor beta, torch::Tensor w2, torch::Tensor b2,
                                         torch::Tensor rmean, torch::Tensor rvar, bool training, double eps) {
  check_inputs({u, w1, b1, gamma, beta, w2, b2, rmean, rvar});
  TORCH_CHECK(training || (rmean.numel() > 0 && rvar.numel() > 0), "fused_cnn: eval needs running stats");
  const Dims d = make_dims(u, w1);
  const std::vector<torch::Tensor> in{u, w1, b1, gamma, beta, w2, b2};
  std::vector<torch::Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "fused_forward", [&] {
    r = dispatch_k<scalar_t>(d.k, [&](auto ks) {
      return forward_impl<scalar_t, decltype(ks)::value>(d, in, rmean, rvar, training, eps);
    });
  });
  return r;
}

// (grad_out, u, w1, b1, gamma, beta, w2, b2, mean, invstd, training) -> (du, dw1, db1, dgamma, dbeta, dw2, db2)
std::vector<torch::Tensor> fused_backward(torch::Tensor gout, torch::Tensor u, torch::Tensor w1, torch::Tensor b1,
                                          torch::Tensor gamma, torch::Tensor beta, torch::Tensor w2,
                                          torch::Tensor b2, torch::Tensor mean, torch::Tensor invstd,
                                          bool training) {
  check_inputs({u, w1, b1, gamma, beta, w2, b2, mean, invstd, gout});
  TORCH_CHECK(mean.numel() > 0 && invstd.numel() > 0, "fused_cnn: backward needs mean and invstd");
  const Dims d = make_dims(u, w1);
  const std::vector<torch::Tensor> in{u, w1, b1, gamma, beta, w2, b2};
  std::vector<torch::Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "fused_backward", [&] {
    r = dispatch_k<scalar_t>(d.k, [&](auto ks) {
      return backward_impl<scalar_t, decltype(ks)::value>(d, gout, in, mean, invstd, training);
    });
  });
  return r;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &fused_forward, "fused two-layer CNN forward over K seeds");
  m.def("backward", &fused_backward, "fused two-layer CNN backward over K seeds");
}
