#include "deepmla/model.hpp"

#include <cstring>

#include "deepmla/error.hpp"

namespace deepmla {

Model::Model(std::unique_ptr<GgufFile> file) : file_(std::move(file)) {
  for (const GgufTensorInfo& t : file_->tensors()) {
    WeightView w;
    w.name = t.name;
    w.type = t.type;
    w.ne = t.ne;
    w.row_bytes = row_bytes(t.type, t.ne[0]);
    w.data = t.data;
    weights_[t.name] = std::move(w);
  }
}

const WeightView* Model::find(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : &it->second;
}

const WeightView& Model::require(const std::string& name) const {
  const WeightView* w = find(name);
  if (!w) fail(codes::kGgufMissingTensor, "model has no tensor '" + name + "'");
  return *w;
}

void Model::add_derived(const std::string& name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data) {
  derived_bytes_ += data.size();
  derived_storage_.push_back(std::make_unique<std::vector<uint8_t>>(std::move(data)));
  WeightView w;
  w.name = name;
  w.type = type;
  w.ne = std::move(ne);
  w.row_bytes = row_bytes(type, w.ne[0]);
  w.data = derived_storage_.back()->data();
  w.derived = true;
  weights_[name] = std::move(w);
}

namespace {

// Dequantizes a whole weight into floats, row by row.
std::vector<float> dequantize(const WeightView& w) {
  int64_t rows = 1;
  for (size_t i = 1; i < w.ne.size(); ++i) rows *= w.ne[i];
  std::vector<float> out(size_t(rows * w.ne[0]));
  const TypeTraits& t = type_traits(w.type);
  const int64_t per_matrix = w.ne.size() > 1 ? w.ne[1] : 1;
  const size_t matrix_bytes = w.matrix_bytes ? w.matrix_bytes : w.row_bytes * size_t(per_matrix);
  for (int64_t r = 0; r < rows; ++r)
    t.dequantize_row(w.data + size_t(r / per_matrix) * matrix_bytes + size_t(r % per_matrix) * w.row_bytes,
                     out.data() + r * w.ne[0], w.ne[0]);
  return out;
}

std::vector<uint8_t> encode(const std::vector<float>& values, TensorType type) {
  std::vector<uint8_t> out(values.size() * (type == TensorType::F32 ? 4 : 2));
  type_traits(type).quantize_row(values.data(), out.data(), int64_t(values.size()));
  return out;
}

void check_shape(const WeightView& w, std::vector<int64_t> expected) {
  if (w.ne != expected) {
    std::string got, want;
    for (int64_t d : w.ne) got += (got.empty() ? "" : ", ") + std::to_string(d);
    for (int64_t d : expected) want += (want.empty() ? "" : ", ") + std::to_string(d);
    fail(codes::kGgufBadShape, "tensor '" + w.name + "' has shape [" + got + "], expected [" + want + "]");
  }
}

// The attention dimensions the derivations take come from the file's keys: each must be
// positive (a u32 key past INT_MAX arrives negative).
void check_attention_dims(int n_layer, int n_head, int nope, int v_dim, int kv_lora) {
  if (n_layer < 1 || n_head < 1 || nope < 1 || v_dim < 1 || kv_lora < 1)
    fail(codes::kGgufBadValue, "attention dimensions must be positive: layers " + std::to_string(n_layer) +
                                   ", heads " + std::to_string(n_head) + ", nope " + std::to_string(nope) +
                                   ", v " + std::to_string(v_dim) + ", kv_lora " + std::to_string(kv_lora));
}

}  // namespace

int Model::derive_split_layout(int n_layer, int n_head, int nope, int v_dim, int kv_lora) {
  check_attention_dims(n_layer, n_head, nope, v_dim, kv_lora);
  int created = 0;
  // kv_b's rows per head, in 64 bits: the dimensions come from the file (int + int overflowed
  // on a fuzzed header).
  const int64_t head_rows = int64_t(nope) + v_dim;
  for (int il = 0; il < n_layer; ++il) {
    const std::string prefix = "blk." + std::to_string(il) + ".";
    if (find(prefix + "attn_k_b.weight") && find(prefix + "attn_v_b.weight")) continue;
    const WeightView& kv_b = require(prefix + "attn_kv_b.weight");
    check_shape(kv_b, {kv_lora, int64_t(n_head) * head_rows});
    const TensorType type = kv_b.type == TensorType::F32 ? TensorType::F32 : TensorType::F16;
    const std::vector<float> src = dequantize(kv_b);
    std::vector<float> k_b(size_t(n_head) * kv_lora * nope);
    for (int h = 0; h < n_head; ++h) {
      const float* head = src.data() + size_t(h) * size_t(head_rows) * size_t(kv_lora);
      // k_b[h][c][n] = kv_b[h * (nope + v) + n][c]: rows of k_b run over nope.
      for (int n = 0; n < nope; ++n)
        for (int c = 0; c < kv_lora; ++c) k_b[(size_t(h) * kv_lora + c) * nope + n] = head[size_t(n) * kv_lora + c];
    }
    add_derived(prefix + "attn_k_b.weight", type, {nope, kv_lora, n_head}, encode(k_b, type));
    // v_b[h][v][c] = kv_b[h * (nope + v) + nope + v][c]: kv_b's own rows, so a view of them
    // in kv_b's type. An F16 copy read twice the bytes of a Q8_0 kv_b in every token (and
    // held n_head * v * kv_lora * 2 bytes per layer: 1 GB for DeepSeek-V3).
    WeightView v_b;
    v_b.name = prefix + "attn_v_b.weight";
    v_b.type = kv_b.type;
    v_b.ne = {kv_lora, v_dim, n_head};
    v_b.row_bytes = kv_b.row_bytes;
    v_b.matrix_bytes = kv_b.row_bytes * size_t(head_rows);
    v_b.data = kv_b.data + kv_b.row_bytes * size_t(nope);
    v_b.derived = true;
    weights_[v_b.name] = std::move(v_b);
    created += 2;
  }
  return created;
}

int Model::derive_legacy_layout(int n_layer, int n_head, int nope, int v_dim, int kv_lora) {
  check_attention_dims(n_layer, n_head, nope, v_dim, kv_lora);
  int created = 0;
  const int64_t head_rows = int64_t(nope) + v_dim;  // in 64 bits, as in derive_split_layout
  for (int il = 0; il < n_layer; ++il) {
    const std::string prefix = "blk." + std::to_string(il) + ".";
    if (find(prefix + "attn_kv_b.weight")) continue;
    const WeightView& k_b = require(prefix + "attn_k_b.weight");
    const WeightView& v_b = require(prefix + "attn_v_b.weight");
    check_shape(k_b, {nope, kv_lora, n_head});
    check_shape(v_b, {kv_lora, v_dim, n_head});
    const TensorType type = k_b.type == TensorType::F32 && v_b.type == TensorType::F32 ? TensorType::F32 : TensorType::F16;
    const std::vector<float> k = dequantize(k_b), v = dequantize(v_b);
    std::vector<float> kv_b(size_t(n_head) * size_t(head_rows) * size_t(kv_lora));
    for (int h = 0; h < n_head; ++h) {
      float* head = kv_b.data() + size_t(h) * size_t(head_rows) * size_t(kv_lora);
      for (int n = 0; n < nope; ++n)
        for (int c = 0; c < kv_lora; ++c) head[size_t(n) * kv_lora + c] = k[(size_t(h) * kv_lora + c) * nope + n];
      std::memcpy(head + size_t(nope) * kv_lora, &v[size_t(h) * v_dim * kv_lora], sizeof(float) * v_dim * kv_lora);
    }
    add_derived(prefix + "attn_kv_b.weight", type, {kv_lora, int64_t(n_head) * head_rows}, encode(kv_b, type));
    created += 1;
  }
  return created;
}

}  // namespace deepmla
