#pragma once
// The compute graph that lib/model/graph.ts builds and the executor runs: a flat list of
// ops over typed tensor views with shapes, byte strides and buffer offsets. The binding
// copies the JS description into these plain structs; compile() checks every view
// against its buffer and every op against its operands before anything runs.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "deepmla/model.hpp"
#include "deepmla/rope.hpp"
#include "deepmla/thread_pool.hpp"
#include "deepmla/types.hpp"

namespace deepmla {

enum class Storage { WEIGHT, ARENA, CACHE, INPUT };
enum class Input { TOKENS = 0, POSITIONS = 1 };

struct TensorDesc {
  std::string name;
  TensorType type = TensorType::F32;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // innermost first
  std::array<int64_t, 4> nb{0, 0, 0, 0};  // byte strides
  Storage storage = Storage::ARENA;
  std::string weight;   // WEIGHT: tensor name in the model
  int cache = -1;       // CACHE: index into the context's caches
  int input = -1;       // INPUT: Input
  int64_t offset = 0;   // ARENA / CACHE: byte offset into the buffer
};

struct OpDesc {
  std::string kind;
  std::string name;  // for error messages: the builder's name of the op
  std::vector<int> inputs;
  std::vector<int> outputs;
  std::map<std::string, double> params;
  // Arena tensor the op uses as scratch (planned by the builder to overlap with dead
  // activations); -1: the context's separate workspace.
  int scratch = -1;
};

struct GraphDesc {
  int64_t n_tokens = 0;          // rows of the micro-batch this graph evaluates
  int64_t arena_bytes = 0;       // activations, as planned by the builder
  std::vector<TensorDesc> tensors;
  std::vector<OpDesc> ops;
  int logits = -1;               // tensor copied out after evaluation
};

// One cache buffer of a context (e.g. layer 3's K cache).
struct CacheDesc {
  std::string name;
  TensorType type = TensorType::F16;
  int64_t row_length = 0;     // values per row
  int64_t n_rows = 0;         // rows (context size, or context size x heads)
  bool transposed = false;    // V^T cache: a row per channel, a column per slot
  int64_t rows_per_slot = 1;  // rows one token occupies (heads, for mla 0's caches)
  int64_t rope_offset = -1;   // where the rotated part of a row starts (-1: none)
  int64_t rope_dims = 0;
};

struct Tensor;
class Context;
struct ExecState;

// An op after compile(): bound operands and its own run function.
struct CompiledOp {
  const OpDesc* desc = nullptr;
  std::vector<Tensor*> in, out;
  Tensor* scratch = nullptr;
  void (*run)(const CompiledOp& op, ExecState& state) = nullptr;
  // Scratch the op needs: shared bytes plus bytes per thread, carved from the workspace.
  size_t shared_scratch = 0;
  size_t thread_scratch = 0;
};

// A bound view: descriptor plus the address its buffer resolves to at run time.
struct Tensor {
  TensorDesc desc;
  const WeightView* weight = nullptr;
  uint8_t* data = nullptr;  // resolved before each evaluation (input buffers move)
  int64_t nelements() const { return desc.ne[0] * desc.ne[1] * desc.ne[2] * desc.ne[3]; }
  template <class T>
  T* ptr(int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
    return reinterpret_cast<T*>(data + i1 * desc.nb[1] + i2 * desc.nb[2] + i3 * desc.nb[3]);
  }
};

class CompiledGraph {
 public:
  const GraphDesc& desc() const { return desc_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  friend class Context;
  GraphDesc desc_;
  std::vector<std::unique_ptr<Tensor>> tensors_;
  std::vector<CompiledOp> ops_;
  size_t workspace_bytes_ = 0;
};

// What an op sees while running.
struct ExecState {
  ThreadPool* pool = nullptr;
  int64_t n_past = 0;     // cache rows filled before this micro-batch
  int64_t n_ctx = 0;      // cache rows in all
  uint8_t* shared_scratch = nullptr;
  uint8_t* thread_scratch = nullptr;
  size_t thread_scratch_stride = 0;
  uint8_t* scratch_for(int thread) const { return thread_scratch + size_t(thread) * thread_scratch_stride; }
};

struct ContextOptions {
  int n_threads = 1;
  int64_t n_ctx = 0;
  std::vector<CacheDesc> caches;
};

// Uninitialised 64-byte-aligned memory: pages are committed only when touched, so a
// large KV cache costs RSS only for the rows in use.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class OpProfile;

class Context {
 public:
  ~Context();
  Context(std::shared_ptr<Model> model, ContextOptions options);

  const Model& model() const { return *model_; }
  int64_t n_ctx() const { return options_.n_ctx; }
  size_t cache_bytes(int cache) const { return caches_.at(size_t(cache)).size(); }
  const std::vector<CacheDesc>& caches() const { return options_.caches; }
  // Activations + workspace of the largest graph compiled so far.
  size_t compute_buffer_bytes() const { return arena_.size(); }

  std::shared_ptr<CompiledGraph> compile(GraphDesc desc);
  // Scratch bytes each op of the graph needs with this context's threads (offsets of
  // arena tensors are not checked: the builder plans them afterwards, scratch included).
  std::vector<size_t> measure(GraphDesc desc) const;
  // Runs the graph over n_tokens tokens at cache rows [n_past, n_past + n_tokens) and
  // writes the logits tensor's values (row-major, contiguous) to out, which must hold
  // exactly logits_count(graph) floats: the caller's buffer, so a generated token's
  // 400 KB of logits are written once, not staged in a fresh allocation per call.
  void evaluate(CompiledGraph& graph, const std::vector<int32_t>& tokens, const std::vector<int32_t>& positions,
                int64_t n_past, float* out, size_t out_count);
  static size_t logits_count(const CompiledGraph& graph);
  int n_threads() const { return pool_.size(); }
  uint8_t* cache_data(int cache) const { return caches_.at(size_t(cache)).data(); }

  // Context shift (seed 003): drops slots [keep, keep + drop) of the first n_past and moves
  // the later ones down by drop, re-rotating the RoPE part of each moved key by -drop.
  void shift(int64_t keep, int64_t drop, int64_t n_past, const RopeParams& rope);
  // Bytes of the first n_past slots of every cache, as save() writes them.
  size_t saved_bytes(int64_t n_past) const;
  // Writes `header` and the first n_past slots of every cache to path / reads them back.
  void save(const std::string& path, const std::string& header, int64_t n_past) const;
  static std::string read_header(const std::string& path);
  void load(const std::string& path, int64_t n_past);

 private:
  void bind_tensor(Tensor& t, const GraphDesc& graph, bool check_arena = true) const;
  void bind_ops(CompiledGraph& graph) const;
  size_t scratch_bytes(const CompiledOp& op) const;

  std::shared_ptr<Model> model_;
  ContextOptions options_;
  ThreadPool pool_;
  std::vector<AlignedBuffer> caches_;
  AlignedBuffer arena_;
  std::vector<int32_t> tokens_, positions_;
  std::unique_ptr<OpProfile> profile_;  // DEEPMLA_PROFILE
};

// Op table (native/src/ops): binds run functions and checks operands at compile time.
void bind_op(CompiledOp& op, const Context& context, int64_t n_tokens);

}  // namespace deepmla
