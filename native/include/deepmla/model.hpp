#pragma once
// A loaded model: the mmapped GGUF plus tensors derived at load (the other attention
// layout, see DESIGN.md "Two tensor layouts"). Weights are never copied into JS.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "deepmla/gguf.hpp"
#include "deepmla/types.hpp"

namespace deepmla {

// A weight as the executor sees it: contiguous rows of ne[0] values.
struct WeightView {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<int64_t> ne;
  size_t row_bytes = 0;
  // Bytes from one matrix of a 3-D weight to the next; 0: the matrices are contiguous
  // (a derived attn_v_b is a strided view of attn_kv_b's rows).
  size_t matrix_bytes = 0;
  const uint8_t* data = nullptr;
  bool derived = false;
};

class Model {
 public:
  explicit Model(std::unique_ptr<GgufFile> file);

  const GgufFile& file() const { return *file_; }
  // nullptr when neither the file nor a derivation has it.
  const WeightView* find(const std::string& name) const;

  // Legacy attn_kv_b {kv_lora, n_head * (nope + v)} -> split attn_k_b {nope, kv_lora, n_head}
  // and attn_v_b {kv_lora, v, n_head} for every layer that lacks them, or the reverse.
  // attn_v_b is a view of attn_kv_b's rows in their own type (no copy); the other derived
  // tensors are F32 for F32 sources and F16 otherwise: no second quantization.
  // Returns the number of tensors created.
  int derive_split_layout(int n_layer, int n_head, int nope, int v_dim, int kv_lora);
  int derive_legacy_layout(int n_layer, int n_head, int nope, int v_dim, int kv_lora);
  size_t derived_bytes() const { return derived_bytes_; }

 private:
  void add_derived(const std::string& name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data);
  const WeightView& require(const std::string& name) const;

  std::unique_ptr<GgufFile> file_;
  std::map<std::string, WeightView> weights_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> derived_storage_;
  size_t derived_bytes_ = 0;
};

}  // namespace deepmla
