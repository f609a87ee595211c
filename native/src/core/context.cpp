#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "deepmla/error.hpp"
#include "deepmla/graph.hpp"
#include "op_profile.hpp"

namespace deepmla {

// ---- AlignedBuffer: anonymous mappings, zero pages until written -----------------------

AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  if (size == 0) return;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fail(codes::kOutOfMemory, "cannot reserve " + std::to_string(size >> 20) + " MiB");
  data_ = static_cast<uint8_t*>(p);
}
AlignedBuffer::~AlignedBuffer() {
  if (data_) munmap(data_, size_);
}
AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}
AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) munmap(data_, size_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

// ---- Context -------------------------------------------------------------------------

namespace {
constexpr size_t kAlign = 64;
size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

std::string shape_string(const std::array<int64_t, 4>& ne) {
  return "[" + std::to_string(ne[0]) + ", " + std::to_string(ne[1]) + ", " + std::to_string(ne[2]) + ", " +
         std::to_string(ne[3]) + "]";
}

[[noreturn]] void bad_tensor(const TensorDesc& d, const std::string& why) {
  fail(codes::kInvalidGraph, "tensor '" + d.name + "' " + shape_string(d.ne) + ": " + why);
}

// Bytes from the first to one past the last byte a view touches.
int64_t view_extent(const TensorDesc& d) {
  const int64_t row = int64_t(row_bytes(d.type, d.ne[0]));
  if (row == 0) bad_tensor(d, "innermost dimension is not a whole number of blocks");
  int64_t extent = row;
  for (int i = 1; i < 4; ++i) extent += (d.ne[i] - 1) * d.nb[i];
  return extent;
}
}  // namespace

Context::~Context() = default;

Context::Context(std::shared_ptr<Model> model, ContextOptions options)
    : model_(std::move(model)), options_(std::move(options)), pool_(options_.n_threads),
      profile_(OpProfile::from_environment()) {
  for (const CacheDesc& c : options_.caches) {
    const size_t row = row_bytes(c.type, c.row_length);
    if (row == 0 || c.n_rows <= 0) fail(codes::kInvalidOption, "cache '" + c.name + "' has an invalid shape");
    caches_.emplace_back(row * size_t(c.n_rows));
  }
}

void Context::bind_tensor(Tensor& t, const GraphDesc& graph, bool check_arena) const {
  TensorDesc& d = t.desc;
  for (int64_t n : d.ne)
    if (n < 1) bad_tensor(d, "dimension < 1");
  for (int i = 1; i < 4; ++i)
    if (d.nb[i] < 0) bad_tensor(d, "negative stride");
  switch (d.storage) {
    case Storage::WEIGHT: {
      t.weight = model_->find(d.weight);
      if (!t.weight) fail(codes::kGgufMissingTensor, "model has no tensor '" + d.weight + "'");
      std::array<int64_t, 4> ne{1, 1, 1, 1};
      for (size_t i = 0; i < t.weight->ne.size() && i < 4; ++i) ne[i] = t.weight->ne[i];
      if (ne != d.ne || t.weight->type != d.type)
        fail(codes::kGgufBadShape, "tensor '" + d.weight + "' is " + type_name(t.weight->type) + " " +
                                       shape_string(ne) + ", the graph expects " + type_name(d.type) + " " +
                                       shape_string(d.ne));
      d.nb[0] = int64_t(type_traits(d.type).block_bytes);
      d.nb[1] = int64_t(t.weight->row_bytes);
      d.nb[2] = t.weight->matrix_bytes ? int64_t(t.weight->matrix_bytes) : d.nb[1] * d.ne[1];
      d.nb[3] = d.nb[2] * d.ne[2];
      return;
    }
    case Storage::ARENA:
      if (d.type != TensorType::F32 && d.type != TensorType::I32) bad_tensor(d, "arena tensors are f32 or i32");
      if (d.nb[0] != 4) bad_tensor(d, "arena tensors are contiguous in their innermost dimension");
      if (check_arena && (d.offset < 0 || d.offset % 4 != 0 || d.offset + view_extent(d) > graph.arena_bytes))
        bad_tensor(d, "lies outside the arena");
      return;
    case Storage::CACHE: {
      if (d.cache < 0 || size_t(d.cache) >= caches_.size()) bad_tensor(d, "names no cache");
      const CacheDesc& c = options_.caches[size_t(d.cache)];
      if (d.type != c.type) bad_tensor(d, "type differs from its cache's");
      if (d.offset < 0 || d.offset + view_extent(d) > int64_t(caches_[size_t(d.cache)].size()))
        bad_tensor(d, "lies outside its cache");
      return;
    }
    case Storage::INPUT:
      // The whole input or its last rows (the positions of the last layer's queries).
      if (d.type != TensorType::I32 || d.ne[0] < 1 || d.ne[0] > graph.n_tokens || d.ne[1] * d.ne[2] * d.ne[3] != 1 ||
          d.offset != 4 * (graph.n_tokens - d.ne[0]) || (d.input != int(Input::TOKENS) && d.input != int(Input::POSITIONS)))
        bad_tensor(d, "inputs are i32 tokens or positions: all n_tokens of them or the last rows");
      d.nb = {4, 4 * d.ne[0], 4 * d.ne[0], 4 * d.ne[0]};
      return;
  }
}

size_t Context::scratch_bytes(const CompiledOp& op) const {
  if (op.shared_scratch == 0 && op.thread_scratch == 0) return 0;
  return align_up(op.shared_scratch) + size_t(pool_.size()) * align_up(op.thread_scratch);
}

void Context::bind_ops(CompiledGraph& graph) const {
  const GraphDesc& g = graph.desc_;
  auto tensor = [&](int i, const OpDesc& od) -> Tensor* {
    if (i < 0 || size_t(i) >= graph.tensors_.size()) fail(codes::kInvalidGraph, "op '" + od.name + "' names no tensor " + std::to_string(i));
    return graph.tensors_[size_t(i)].get();
  };
  for (const OpDesc& od : g.ops) {
    CompiledOp op;
    op.desc = &od;
    for (int i : od.inputs) op.in.push_back(tensor(i, od));
    for (int i : od.outputs) {
      Tensor* t = tensor(i, od);
      if (t->desc.storage == Storage::WEIGHT || t->desc.storage == Storage::INPUT)
        fail(codes::kInvalidGraph, "op '" + od.name + "' writes to a read-only tensor '" + t->desc.name + "'");
      op.out.push_back(t);
    }
    if (od.scratch >= 0) {
      op.scratch = tensor(od.scratch, od);
      if (op.scratch->desc.storage != Storage::ARENA) fail(codes::kInvalidGraph, "op '" + od.name + "' has scratch outside the arena");
    }
    bind_op(op, *this, g.n_tokens);
    graph.ops_.push_back(std::move(op));
  }
}

std::vector<size_t> Context::measure(GraphDesc desc) const {
  CompiledGraph graph;
  graph.desc_ = std::move(desc);
  for (const TensorDesc& d : graph.desc_.tensors) {
    auto t = std::make_unique<Tensor>();
    t->desc = d;
    bind_tensor(*t, graph.desc_, false);
    graph.tensors_.push_back(std::move(t));
  }
  bind_ops(graph);
  std::vector<size_t> out;
  for (const CompiledOp& op : graph.ops_) out.push_back(scratch_bytes(op));
  return out;
}

std::shared_ptr<CompiledGraph> Context::compile(GraphDesc desc) {
  auto graph = std::make_shared<CompiledGraph>();
  if (desc.n_tokens < 1) fail(codes::kInvalidGraph, "a graph evaluates at least one token");
  if (desc.arena_bytes < 0) fail(codes::kInvalidGraph, "negative arena size");
  graph->desc_ = std::move(desc);
  const GraphDesc& g = graph->desc_;
  for (const TensorDesc& d : g.tensors) {
    auto t = std::make_unique<Tensor>();
    t->desc = d;
    bind_tensor(*t, g);
    graph->tensors_.push_back(std::move(t));
  }
  if (g.logits < 0 || size_t(g.logits) >= g.tensors.size() ||
      graph->tensors_[size_t(g.logits)]->desc.storage != Storage::ARENA)
    fail(codes::kInvalidGraph, "the graph names no logits tensor in the arena");
  bind_ops(*graph);
  size_t workspace = 0;
  for (const CompiledOp& op : graph->ops_) {
    const size_t need = scratch_bytes(op);
    if (!op.scratch) {
      workspace = std::max(workspace, need);
    } else if (size_t(view_extent(op.scratch->desc)) < need) {
      fail(codes::kInvalidGraph, "op '" + op.desc->name + "' needs " + std::to_string(need) + " bytes of scratch");
    }
  }
  graph->workspace_bytes_ = workspace;
  const size_t needed = align_up(size_t(g.arena_bytes)) + workspace;
  if (needed > arena_.size()) arena_ = AlignedBuffer(needed);
  return graph;
}

size_t Context::logits_count(const CompiledGraph& graph) {
  return size_t(graph.tensors_[size_t(graph.desc_.logits)]->nelements());
}

void Context::evaluate(CompiledGraph& graph, const std::vector<int32_t>& tokens, const std::vector<int32_t>& positions,
                       int64_t n_past, float* out, size_t out_count) {
  const GraphDesc& g = graph.desc_;
  if (out_count != logits_count(graph))
    fail(codes::kInvalidOption, "the logits buffer holds " + std::to_string(out_count) + " floats, the graph writes " +
                                    std::to_string(logits_count(graph)));
  if (int64_t(tokens.size()) != g.n_tokens || int64_t(positions.size()) != g.n_tokens)
    fail(codes::kInvalidOption, "the batch has " + std::to_string(tokens.size()) + " tokens, the graph " +
                                    std::to_string(g.n_tokens));
  if (n_past < 0 || n_past + g.n_tokens > options_.n_ctx)
    fail(codes::kContextFull, "the context holds " + std::to_string(options_.n_ctx) + " tokens; " +
                                  std::to_string(n_past) + " + " + std::to_string(g.n_tokens) + " do not fit");
  tokens_ = tokens;
  positions_ = positions;
  for (auto& t : graph.tensors_) {
    switch (t->desc.storage) {
      case Storage::WEIGHT: t->data = const_cast<uint8_t*>(t->weight->data); break;
      case Storage::ARENA: t->data = arena_.data() + t->desc.offset; break;
      case Storage::CACHE: t->data = caches_[size_t(t->desc.cache)].data() + t->desc.offset; break;
      case Storage::INPUT:
        t->data = reinterpret_cast<uint8_t*>(t->desc.input == int(Input::TOKENS) ? tokens_.data() : positions_.data()) +
                  t->desc.offset;
        break;
    }
  }
  ExecState state;
  state.pool = &pool_;
  state.n_past = n_past;
  state.n_ctx = options_.n_ctx;
  uint8_t* workspace = arena_.data() + align_up(size_t(g.arena_bytes));
  for (const CompiledOp& op : graph.ops_) {
    uint8_t* scratch = op.scratch ? op.scratch->data : workspace;
    state.shared_scratch = scratch;
    state.thread_scratch = scratch + align_up(op.shared_scratch);
    state.thread_scratch_stride = align_up(op.thread_scratch);
    if (profile_) {
      const auto start = std::chrono::steady_clock::now();
      op.run(op, state);
      profile_->add(op.desc->kind, op.desc->name, g.n_tokens, std::chrono::steady_clock::now() - start);
    } else {
      op.run(op, state);
    }
  }
  const Tensor& logits = *graph.tensors_[size_t(g.logits)];
  size_t k = 0;
  for (int64_t i3 = 0; i3 < logits.desc.ne[3]; ++i3)
    for (int64_t i2 = 0; i2 < logits.desc.ne[2]; ++i2)
      for (int64_t i1 = 0; i1 < logits.desc.ne[1]; ++i1, k += size_t(logits.desc.ne[0]))
        std::memcpy(out + k, logits.ptr<float>(i1, i2, i3), sizeof(float) * size_t(logits.desc.ne[0]));
}

}  // namespace deepmla
