// The CPU Langevin update with its Philox noise in one vectorised pass:
//     out = clamp(x + (delta^2 / 2) (g - x / sigma^2) + delta z),   z = normal(seed, offset + e)
// where element e (row-major over x) draws Philox-4x32-10 at counter offset + e, exactly as
// normal_at(seed, offset + e) does in the Triton kernels: the same uint32 words, then Triton's
// uniform map and Box-Muller (log and cos agree to a few ulp). The arithmetic follows
// genconv.kernels.reference operation by operation, in float32, without FMA contraction.
//
// Built on first use by genconv.kernels.cpu_kernel (torch.utils.cpp_extension, ninja) and
// registered as torch.ops.genconv_cpu.{langevin_update, normal}; the pure-PyTorch twin in
// reference.py is the fallback and the oracle.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <sleef.h>
#define GENCONV_AVX2 1
#endif

namespace {

constexpr uint32_t kKeyA = 0x9E3779B9u;
constexpr uint32_t kKeyB = 0xBB67AE85u;
constexpr uint32_t kRoundA = 0xD2511F53u;
constexpr uint32_t kRoundB = 0xCD9E8D57u;
constexpr int kRounds = 10;
constexpr float kUniformScale = 4.6566127342e-10f;
constexpr float kTwoPi = 6.283185307179586f;
constexpr float kSmallestUniform = 1.0e-7f;
// Elements per noise block: a multiple of 8 (one AVX2 vector), small enough for the stack.
constexpr int64_t kBlock = 512;

// Triton's uint32 -> [0, 1) map: bit-cast to int32, fold negatives (-v - 1 == v ^ -1), scale.
inline float uniform_from_word(uint32_t word) {
  const int32_t value = static_cast<int32_t>(word);
  return static_cast<float>(value ^ (value >> 31)) * kUniformScale;
}

inline float normal_from_words(uint32_t word0, uint32_t word1) {
  const float u1 = std::max(uniform_from_word(word0), kSmallestUniform);
  const float theta = kTwoPi * uniform_from_word(word1);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(theta);
}

// Words 0 and 1 of Philox-4x32-10 on the counter (lo, hi, 0, 0) with key (seed lo, seed hi).
inline void philox_words(uint64_t seed, uint64_t counter, uint32_t* word0, uint32_t* word1) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t product_b = static_cast<uint64_t>(kRoundB) * c2;
    const uint64_t product_a = static_cast<uint64_t>(kRoundA) * c0;
    c0 = static_cast<uint32_t>(product_b >> 32) ^ c1 ^ k0;
    c2 = static_cast<uint32_t>(product_a >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(product_b);
    c3 = static_cast<uint32_t>(product_a);
    k0 += kKeyA;
    k1 += kKeyB;
  }
  *word0 = c0;
  *word1 = c1;
}

#ifdef GENCONV_AVX2
// hi and lo 32 bits of the 8 products a[i] * multiplier.
inline void multiply_wide(__m256i a, __m256i multiplier, __m256i* high, __m256i* low) {
  const __m256i even = _mm256_mul_epu32(a, multiplier);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), multiplier);
  *high = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  *low = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// 8 normals at the counters first .. first + 7.
inline __m256 normals8(uint64_t seed, uint64_t first) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i sign = _mm256_set1_epi32(INT32_MIN);
  const __m256i base_low = _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(first)));
  __m256i c0 = _mm256_add_epi32(base_low, lanes);
  // A lane whose low word wrapped carries one into the high word (unsigned compare via the sign flip).
  const __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(base_low, sign), _mm256_xor_si256(c0, sign));
  __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(first >> 32))), wrapped);
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
  const __m256i round_a = _mm256_set1_epi32(static_cast<int32_t>(kRoundA));
  const __m256i round_b = _mm256_set1_epi32(static_cast<int32_t>(kRoundB));
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < kRounds; ++round) {
    __m256i high_b, low_b, high_a, low_a;
    multiply_wide(c2, round_b, &high_b, &low_b);
    multiply_wide(c0, round_a, &high_a, &low_a);
    c0 = _mm256_xor_si256(_mm256_xor_si256(high_b, c1), _mm256_set1_epi32(static_cast<int32_t>(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(high_a, c3), _mm256_set1_epi32(static_cast<int32_t>(k1)));
    c1 = low_b;
    c3 = low_a;
    k0 += kKeyA;
    k1 += kKeyB;
  }
  const __m256 scale = _mm256_set1_ps(kUniformScale);
  const __m256 u1 = _mm256_max_ps(
      _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_xor_si256(c0, _mm256_srai_epi32(c0, 31))), scale),
      _mm256_set1_ps(kSmallestUniform));
  const __m256 u2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_xor_si256(c1, _mm256_srai_epi32(c1, 31))), scale);
  const __m256 theta = _mm256_mul_ps(_mm256_set1_ps(kTwoPi), u2);
  const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), Sleef_logf8_u10(u1)));
  return _mm256_mul_ps(radius, Sleef_cosf8_u10(theta));
}
#endif

// Normals at the counters first .. first + count - 1 into out. Every counter's normal is computed
// the same way wherever it falls in a block (the vector path pads a short tail), so a stream does
// not depend on how it is cut into blocks and rows.
void fill_normals(uint64_t seed, uint64_t first, int64_t count, float* out) {
  int64_t index = 0;
#ifdef GENCONV_AVX2
  for (; index + 8 <= count; index += 8) {
    _mm256_storeu_ps(out + index, normals8(seed, first + static_cast<uint64_t>(index)));
  }
  if (index < count) {
    alignas(32) float tail[8];
    _mm256_store_ps(tail, normals8(seed, first + static_cast<uint64_t>(index)));
    std::copy(tail, tail + (count - index), out + index);
  }
#else
  for (; index < count; ++index) {
    uint32_t word0, word1;
    philox_words(seed, first + static_cast<uint64_t>(index), &word0, &word1);
    out[index] = normal_from_words(word0, word1);
  }
#endif
}

// Work is split into blocks of kBlock elements; a parallel task gets at least this many blocks.
constexpr int64_t kGrainBlocks = 8;

at::Tensor normal(int64_t seed, int64_t offset, at::IntArrayRef shape) {
  TORCH_CHECK(seed >= 0 && offset >= 0, "genconv_cpu::normal: seed and offset must be >= 0");
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  float* data = out.data_ptr<float>();
  const int64_t numel = out.numel();
  at::parallel_for(0, (numel + kBlock - 1) / kBlock, kGrainBlocks, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t start = block * kBlock;
      fill_normals(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset + start),
                   std::min(kBlock, numel - start), data + start);
    }
  });
  return out;
}

// One Langevin update. x and noise are contiguous float32; grad is float32 of x's shape, contiguous
// or 4-D with any strides (a cropped or channels-last view is read in place, row by row).
at::Tensor langevin_update(const at::Tensor& x, const at::Tensor& grad, double delta, double sigma, int64_t seed,
                           int64_t offset, const c10::optional<at::Tensor>& noise,
                           const c10::optional<double> clamp_low, const c10::optional<double> clamp_high) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && grad.scalar_type() == at::kFloat && x.is_contiguous() &&
                  grad.sizes() == x.sizes() && (grad.is_contiguous() || grad.dim() == 4),
              "genconv_cpu::langevin_update: x must be contiguous float32, grad float32 of its shape (4-D if strided)");
  TORCH_CHECK(seed >= 0 && offset >= 0, "genconv_cpu::langevin_update: seed and offset must be >= 0");
  const int64_t numel = x.numel();
  // Rows of `columns` elements in row-major order; row r of grad starts at grad_row_offset(r).
  const bool flat = grad.is_contiguous();
  const int64_t columns = flat ? std::max<int64_t>(numel, 1) : grad.size(3);
  const int64_t column_stride = flat ? 1 : grad.stride(3);
  const int64_t channels = flat ? 1 : grad.size(1), height = flat ? 1 : grad.size(2);
  const int64_t stride0 = flat ? 0 : grad.stride(0), stride1 = flat ? 0 : grad.stride(1);
  const int64_t stride2 = flat ? 0 : grad.stride(2);
  auto grad_row_offset = [&](int64_t row) {
    if (flat) return int64_t{0};
    const int64_t h = row % height, c = (row / height) % channels, b = row / (height * channels);
    return b * stride0 + c * stride1 + h * stride2;
  };
  const float* noise_data = nullptr;
  if (noise.has_value()) {
    TORCH_CHECK(noise->scalar_type() == at::kFloat && noise->is_contiguous() && noise->numel() == numel,
                "genconv_cpu::langevin_update: noise must be contiguous float32 shaped like x");
    noise_data = noise->data_ptr<float>();
  }
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  if (numel == 0) return out;
  const float* x_data = x.data_ptr<float>();
  const float* grad_data = grad.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  // The twin's scalars: tensor-by-Python-float ops compute in float32.
  const float half_delta_sq = static_cast<float>(delta * delta / 2.0);
  const float sigma_sq = static_cast<float>(sigma * sigma);
  const float noise_std = static_cast<float>(delta);
  const bool draws = delta != 0.0;
  const bool clamps = clamp_low.has_value() && clamp_high.has_value();
  const float low = clamps ? static_cast<float>(*clamp_low) : 0.0f;
  const float high = clamps ? static_cast<float>(*clamp_high) : 0.0f;
  const int64_t rows = numel / columns;
  const int64_t blocks_per_row = (columns + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, kGrainBlocks * kBlock / std::min(columns, kBlock));
  at::parallel_for(0, rows * blocks_per_row, grain,
                   [&](int64_t begin, int64_t end) {
    float z[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row = task / blocks_per_row;
      const int64_t column0 = (task % blocks_per_row) * kBlock;
      const int64_t count = std::min(kBlock, columns - column0);
      const int64_t first = row * columns + column0;
      const float* z_block = z;
      if (!draws) {
        std::fill(z, z + count, 0.0f);
      } else if (noise_data != nullptr) {
        z_block = noise_data + first;
      } else {
        fill_normals(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset + first), count, z);
      }
      const float* x_row = x_data + first;
      const float* g_row = grad_data + grad_row_offset(row) + column0 * column_stride;
      float* out_row = out_data + first;
      for (int64_t i = 0; i < count; ++i) {
        const float x_value = x_row[i];
        const float drift = half_delta_sq * (g_row[i * column_stride] - x_value / sigma_sq);
        float value = x_value + drift;
        if (draws) value = value + noise_std * z_block[i];
        if (clamps) value = std::min(std::max(value, low), high);
        out_row[i] = value;
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(genconv_cpu, m) {
  m.def("normal(int seed, int offset, int[] shape) -> Tensor");
  m.def(
      "langevin_update(Tensor x, Tensor grad, float delta, float sigma, int seed, int offset, Tensor? noise, "
      "float? clamp_low, float? clamp_high) -> Tensor");
}

TORCH_LIBRARY_IMPL(genconv_cpu, CPU, m) { m.impl("langevin_update", &langevin_update); }

TORCH_LIBRARY_IMPL(genconv_cpu, CompositeExplicitAutograd, m) { m.impl("normal", &normal); }
