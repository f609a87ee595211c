// The engine's N-API surface: load a model (mmap + prefault, or a read into the process's
// own memory, off the main thread, with progress and an abort flag), derive the other
// attention layout, create a context with its caches, compile a graph built in TS, and evaluate a micro-batch off the main
// thread. Handles are type-tagged externals; dispose functions release them early.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "binding.hpp"
#include "deepmla/graph.hpp"
#include "deepmla/kernels.hpp"
#include "deepmla/model.hpp"

namespace deepmla::binding {

namespace {

constexpr napi_type_tag kModelTag = {0x6d4c1a7e2b3c4d5eull, 0x0f1e2d3c4b5a6978ull};
constexpr napi_type_tag kContextTag = {0x6d4c1a7e2b3c4d5full, 0x1f1e2d3c4b5a6979ull};
constexpr napi_type_tag kGraphTag = {0x6d4c1a7e2b3c4d60ull, 0x2f1e2d3c4b5a697aull};

struct ModelHandle {
  std::shared_ptr<Model> model;
};
struct ContextHandle {
  std::shared_ptr<Context> context;
  std::atomic<bool> busy{false};
};
struct GraphHandle {
  std::shared_ptr<CompiledGraph> graph;
  std::shared_ptr<Context> context;  // the context it was compiled for
};

template <class T>
Napi::External<T> wrap(Napi::Env env, T* handle, const napi_type_tag& tag) {
  auto ext = Napi::External<T>::New(env, handle, [](Napi::Env, T* h) { delete h; });
  ext.TypeTag(&tag);
  return ext;
}

template <class T>
T* unwrap(const Napi::Value& v, const napi_type_tag& tag, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(&tag))
    throw Error(codes::kInvalidOption, std::string("expected a ") + what + " handle");
  return v.As<Napi::External<T>>().Data();
}

std::shared_ptr<Model> model_of(const Napi::Value& v) {
  ModelHandle* h = unwrap<ModelHandle>(v, kModelTag, "model");
  if (!h->model) throw Error(codes::kDisposed, "the model was disposed");
  return h->model;
}

ContextHandle* context_of(const Napi::Value& v) {
  ContextHandle* h = unwrap<ContextHandle>(v, kContextTag, "context");
  if (!h->context) throw Error(codes::kDisposed, "the context was disposed");
  return h;
}

// ---- JS value readers: every field type-checked, errors name the field ---------------

double number_field(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Error(codes::kInvalidGraph, where + ": '" + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t int_field(const Napi::Object& o, const char* key, const std::string& where) {
  const double d = number_field(o, key, where);
  if (d != double(int64_t(d)) || d < -9007199254740991.0 || d > 9007199254740991.0)
    throw Error(codes::kInvalidGraph, where + ": '" + key + "' must be an integer");
  return int64_t(d);
}

std::string string_field(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Error(codes::kInvalidGraph, where + ": '" + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Array array_field(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw Error(codes::kInvalidGraph, where + ": '" + key + "' must be an array");
  return v.As<Napi::Array>();
}

Napi::Object object_at(const Napi::Array& a, uint32_t i, const std::string& where) {
  Napi::Value v = a.Get(i);
  if (!v.IsObject()) throw Error(codes::kInvalidGraph, where + " must be an object");
  return v.As<Napi::Object>();
}

TensorType tensor_type(int64_t id, const std::string& where) {
  const TypeTraits* t = id >= 0 && id < (1ll << 31) ? find_type_traits(uint32_t(id)) : nullptr;
  if (!t) throw Error(codes::kInvalidGraph, where + ": unknown tensor type " + std::to_string(id));
  return t->type;
}

std::array<int64_t, 4> dims_field(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Array a = array_field(o, key, where);
  if (a.Length() != 4) throw Error(codes::kInvalidGraph, where + ": '" + key + "' must have 4 entries");
  std::array<int64_t, 4> out{};
  for (uint32_t i = 0; i < 4; ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Error(codes::kInvalidGraph, where + ": '" + key + "' entries must be numbers");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (d != double(int64_t(d)) || d < 0 || d > 1e15) throw Error(codes::kInvalidGraph, where + ": bad '" + key + "' entry");
    out[i] = int64_t(d);
  }
  return out;
}

TensorDesc read_tensor(const Napi::Object& o, const std::string& where) {
  TensorDesc d;
  d.name = string_field(o, "name", where);
  d.type = tensor_type(int_field(o, "type", where), where);
  d.ne = dims_field(o, "ne", where);
  d.nb = dims_field(o, "nb", where);
  const std::string storage = string_field(o, "storage", where);
  if (storage == "weight") {
    d.storage = Storage::WEIGHT;
    d.weight = string_field(o, "weight", where);
  } else if (storage == "arena") {
    d.storage = Storage::ARENA;
    d.offset = int_field(o, "offset", where);
  } else if (storage == "cache") {
    d.storage = Storage::CACHE;
    d.cache = int(int_field(o, "cache", where));
    d.offset = int_field(o, "offset", where);
  } else if (storage == "input") {
    d.storage = Storage::INPUT;
    d.input = int(int_field(o, "input", where));
    d.offset = int_field(o, "offset", where);
  } else {
    throw Error(codes::kInvalidGraph, where + ": unknown storage '" + storage + "'");
  }
  return d;
}

std::vector<int> int_list(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Array a = array_field(o, key, where);
  std::vector<int> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Error(codes::kInvalidGraph, where + ": '" + key + "' entries must be numbers");
    out.push_back(v.As<Napi::Number>().Int32Value());
  }
  return out;
}

GraphDesc read_graph(const Napi::Object& o) {
  GraphDesc g;
  g.n_tokens = int_field(o, "nTokens", "graph");
  g.arena_bytes = int_field(o, "arenaBytes", "graph");
  g.logits = int(int_field(o, "logits", "graph"));
  Napi::Array tensors = array_field(o, "tensors", "graph");
  for (uint32_t i = 0; i < tensors.Length(); ++i) {
    const std::string where = "graph tensor " + std::to_string(i);
    g.tensors.push_back(read_tensor(object_at(tensors, i, where), where));
  }
  Napi::Array ops = array_field(o, "ops", "graph");
  for (uint32_t i = 0; i < ops.Length(); ++i) {
    const std::string where = "graph op " + std::to_string(i);
    Napi::Object op = object_at(ops, i, where);
    OpDesc d;
    d.kind = string_field(op, "kind", where);
    d.name = string_field(op, "name", where);
    d.inputs = int_list(op, "inputs", where);
    d.outputs = int_list(op, "outputs", where);
    if (op.Has("scratch") && !op.Get("scratch").IsUndefined()) d.scratch = int(int_field(op, "scratch", where));
    Napi::Value params = op.Get("params");
    if (!params.IsObject()) throw Error(codes::kInvalidGraph, where + ": 'params' must be an object");
    Napi::Array keys = params.As<Napi::Object>().GetPropertyNames();
    for (uint32_t k = 0; k < keys.Length(); ++k) {
      const std::string key = keys.Get(k).As<Napi::String>().Utf8Value();
      d.params[key] = number_field(params.As<Napi::Object>(), key.c_str(), where + " params");
    }
    g.ops.push_back(std::move(d));
  }
  return g;
}

// ---- async workers --------------------------------------------------------------------

class LoadWorker : public Napi::AsyncProgressWorker<double> {
 public:
  LoadWorker(Napi::Env env, std::string path, Napi::Function progress, Napi::Int32Array abort_flag, bool resident)
      : Napi::AsyncProgressWorker<double>(env), path_(std::move(path)), resident_(resident),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (!progress.IsEmpty()) progress_ = Napi::Persistent(progress);
    if (!abort_flag.IsEmpty()) {
      abort_ref_ = Napi::Persistent(abort_flag);
      abort_ = reinterpret_cast<std::atomic<int32_t>*>(abort_flag.Data());
    }
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    std::string message;
    if (!run_capturing([&] { load(progress); }, code_, message)) SetError(message);
  }
  void load(const ExecutionProgress& progress) {
    {
      auto report = [&](uint64_t done_bytes, uint64_t total) {
        if (abort_ && abort_->load(std::memory_order_relaxed) != 0) return false;
        const double fraction = total ? double(done_bytes) / double(total) : 1.0;
        progress.Send(&fraction, 1);
        return true;
      };
      // Resident: reading the file is the load (progress over its bytes); mapped: the file
      // is mapped at once and paging its tensor data in is the load.
      auto file = resident_ ? GgufFile::open_resident(path_, report) : GgufFile::open(path_);
      const bool done = file->resident() || file->prefault(report);
      if (!done) throw Error(codes::kAborted, "loading was aborted");
      model_ = std::make_shared<Model>(std::move(file));
    }
  }
  void OnProgress(const double* data, size_t count) override {
    if (!progress_.IsEmpty() && count > 0) progress_.Call({Napi::Number::New(Env(), data[count - 1])});
  }
  void OnOK() override {
    deferred_.Resolve(wrap(Env(), new ModelHandle{std::move(model_)}, kModelTag));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(make_error(Env(), code_, e.Message()).Value()); }

 private:
  std::string path_;
  bool resident_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference progress_;
  Napi::Reference<Napi::Int32Array> abort_ref_;
  std::atomic<int32_t>* abort_ = nullptr;
  std::shared_ptr<Model> model_;
  std::string code_ = codes::kInternal;
};

class DeriveWorker : public PromiseWorker {
 public:
  DeriveWorker(Napi::Env env, std::shared_ptr<Model> model, bool split, std::array<int, 5> dims)
      : PromiseWorker(env), model_(std::move(model)), split_(split), dims_(dims) {}

 protected:
  void run() override {
    created_ = split_ ? model_->derive_split_layout(dims_[0], dims_[1], dims_[2], dims_[3], dims_[4])
                      : model_->derive_legacy_layout(dims_[0], dims_[1], dims_[2], dims_[3], dims_[4]);
  }
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, created_); }

 private:
  std::shared_ptr<Model> model_;
  bool split_;
  std::array<int, 5> dims_;
  int created_ = 0;
};

std::vector<int32_t> int32_vector(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Error(codes::kInvalidOption, std::string(what) + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// ---- exported functions ---------------------------------------------------------------

Napi::Value load_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw Error(codes::kInvalidOption, "path must be a string");
    Napi::Function progress = info[1].IsFunction() ? info[1].As<Napi::Function>() : Napi::Function();
    Napi::Int32Array abort_flag;
    if (info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array)
      abort_flag = info[2].As<Napi::Int32Array>();
    const bool resident = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    auto* worker = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), progress, abort_flag, resident);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value dispose_model(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    unwrap<ModelHandle>(info[0], kModelTag, "model")->model.reset();
    return info.Env().Undefined();
  });
}

Napi::Value derive_layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto model = model_of(info[0]);
    if (!info[1].IsString()) throw Error(codes::kInvalidOption, "layout must be 'split' or 'legacy'");
    const std::string layout = info[1].As<Napi::String>().Utf8Value();
    if (layout != "split" && layout != "legacy") throw Error(codes::kInvalidOption, "layout must be 'split' or 'legacy'");
    std::array<int, 5> dims{};
    for (int i = 0; i < 5; ++i) {
      if (!info[size_t(2 + i)].IsNumber()) throw Error(codes::kInvalidOption, "dimensions must be numbers");
      dims[size_t(i)] = info[size_t(2 + i)].As<Napi::Number>().Int32Value();
      if (dims[size_t(i)] <= 0) throw Error(codes::kInvalidOption, "dimensions must be positive");
    }
    auto* worker = new DeriveWorker(env, model, layout == "split", dims);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value create_context(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto model = model_of(info[0]);
    if (!info[1].IsObject()) throw Error(codes::kInvalidOption, "options must be an object");
    Napi::Object o = info[1].As<Napi::Object>();
    ContextOptions options;
    options.n_ctx = int_field(o, "nCtx", "context options");
    options.n_threads = int(int_field(o, "threads", "context options"));
    if (options.n_ctx < 1) throw Error(codes::kInvalidOption, "nCtx must be positive");
    if (options.n_threads < 1 || options.n_threads > 1024) throw Error(codes::kInvalidOption, "threads must be in 1..1024");
    Napi::Array caches = array_field(o, "caches", "context options");
    for (uint32_t i = 0; i < caches.Length(); ++i) {
      const std::string where = "cache " + std::to_string(i);
      Napi::Object c = object_at(caches, i, where);
      CacheDesc d;
      d.name = string_field(c, "name", where);
      d.type = tensor_type(int_field(c, "type", where), where);
      d.row_length = int_field(c, "rowLength", where);
      d.n_rows = int_field(c, "nRows", where);
      d.transposed = c.Get("transposed").ToBoolean().Value();
      d.rows_per_slot = int_field(c, "rowsPerSlot", where);
      d.rope_offset = int_field(c, "ropeOffset", where);
      d.rope_dims = int_field(c, "ropeDims", where);
      if (d.rows_per_slot < 1 || d.rope_offset < -1 || d.rope_offset + d.rope_dims > d.row_length)
        throw Error(codes::kInvalidOption, where + ": bad slot or rope layout");
      options.caches.push_back(d);
    }
    auto* handle = new ContextHandle;
    handle->context = std::make_shared<Context>(model, std::move(options));
    return wrap(env, handle, kContextTag);
  });
}

Napi::Value context_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const Context& c = *context_of(info[0])->context;
    Napi::Object out = Napi::Object::New(env);
    Napi::Array caches = Napi::Array::New(env, c.caches().size());
    for (size_t i = 0; i < c.caches().size(); ++i) caches.Set(uint32_t(i), Napi::Number::New(env, double(c.cache_bytes(int(i)))));
    out.Set("cacheBytes", caches);
    out.Set("computeBufferBytes", Napi::Number::New(env, double(c.compute_buffer_bytes())));
    out.Set("threads", Napi::Number::New(env, c.n_threads()));
    return out;
  });
}

Napi::Value dispose_context(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ContextHandle* h = unwrap<ContextHandle>(info[0], kContextTag, "context");
    if (h->busy) throw Error(codes::kInvalidOption, "the context is evaluating; await it before dispose()");
    h->context.reset();
    return info.Env().Undefined();
  });
}

Napi::Value compile_graph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    ContextHandle* h = context_of(info[0]);
    if (!info[1].IsObject()) throw Error(codes::kInvalidGraph, "graph must be an object");
    auto* handle = new GraphHandle{h->context->compile(read_graph(info[1].As<Napi::Object>())), h->context};
    return wrap(env, handle, kGraphTag);
  });
}

Napi::Value measure_graph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    ContextHandle* h = context_of(info[0]);
    if (!info[1].IsObject()) throw Error(codes::kInvalidGraph, "graph must be an object");
    const std::vector<size_t> bytes = h->context->measure(read_graph(info[1].As<Napi::Object>()));
    Napi::Array out = Napi::Array::New(env, bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) out.Set(uint32_t(i), Napi::Number::New(env, double(bytes[i])));
    return out;
  });
}

// Runs `run` on the worker thread with the context marked busy (one task at a time per
// context); the promise resolves to what `result` makes on the main thread (undefined
// when it is empty). The JS handle is referenced so the context outlives the task.
class ContextWorker : public PromiseWorker {
 public:
  using Run = std::function<void(Context&)>;
  using Result = std::function<Napi::Value(Napi::Env)>;

  ContextWorker(Napi::Env env, Napi::Value context_value, ContextHandle* context, Run run, Result result)
      : PromiseWorker(env), context_(context), keep_(context->context), run_(std::move(run)), result_(std::move(result)) {
    context_ref_ = Napi::Persistent(context_value);
  }

 protected:
  void run() override { run_(*keep_); }
  Napi::Value result(Napi::Env env) override { return result_ ? result_(env) : env.Undefined(); }
  void OnOK() override {
    context_->busy = false;
    PromiseWorker::OnOK();
  }
  void OnError(const Napi::Error& e) override {
    context_->busy = false;
    PromiseWorker::OnError(e);
  }

 private:
  ContextHandle* context_;
  Napi::Reference<Napi::Value> context_ref_;
  std::shared_ptr<Context> keep_;
  Run run_;
  Result result_;
};

Napi::Value queue_context_task(Napi::Env env, const Napi::Value& context_value, ContextWorker::Run run,
                               ContextWorker::Result result = {}) {
  ContextHandle* h = context_of(context_value);
  bool expected = false;
  if (!h->busy.compare_exchange_strong(expected, true)) throw Error(codes::kInvalidOption, "the context is busy with another batch");
  auto* worker = new ContextWorker(env, context_value, h, std::move(run), std::move(result));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    ContextHandle* h = context_of(info[0]);
    GraphHandle* g = unwrap<GraphHandle>(info[1], kGraphTag, "graph");
    if (g->context != h->context) throw Error(codes::kInvalidOption, "the graph was compiled for another context");
    auto tokens = int32_vector(info[2], "tokens"), positions = int32_vector(info[3], "positions");
    if (!info[4].IsNumber()) throw Error(codes::kInvalidOption, "nPast must be a number");
    const int64_t n_past = info[4].As<Napi::Number>().Int64Value();
    if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Error(codes::kInvalidOption, "logits must be a Float32Array");
    Napi::Float32Array out = info[5].As<Napi::Float32Array>();
    auto graph = g->graph;
    const size_t count = Context::logits_count(*graph);
    if (out.ElementLength() != count)
      throw Error(codes::kInvalidOption, "the logits array holds " + std::to_string(out.ElementLength()) +
                                             " floats, the graph writes " + std::to_string(count));
    // The worker writes into the caller's array: the reference keeps it alive until the
    // promise settles (the worker, and with it the reference, is freed on this thread).
    auto keep = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
    float* data = out.Data();
    return queue_context_task(
        env, info[0], [=](Context& c) { c.evaluate(*graph, tokens, positions, n_past, data, count); },
        [keep](Napi::Env env) -> Napi::Value { return keep->Value(); });
  });
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Error(codes::kInvalidOption, std::string(what) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != double(int64_t(d))) throw Error(codes::kInvalidOption, std::string(what) + " must be an integer");
  return int64_t(d);
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw Error(codes::kInvalidOption, std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

RopeParams rope_arg(const Napi::Value& v) {
  if (!v.IsObject()) throw Error(codes::kInvalidOption, "rope parameters must be an object");
  Napi::Object o = v.As<Napi::Object>();
  RopeParams p;
  p.n_dims = int(int_field(o, "nDims", "rope"));
  p.freq_base = number_field(o, "freqBase", "rope");
  p.freq_scale = number_field(o, "freqScale", "rope");
  p.ext_factor = number_field(o, "extFactor", "rope");
  p.attn_factor = number_field(o, "attnFactor", "rope");
  p.n_ctx_orig = number_field(o, "nCtxOrig", "rope");
  p.beta_fast = number_field(o, "betaFast", "rope");
  p.beta_slow = number_field(o, "betaSlow", "rope");
  return p;
}

// shiftContext(ctx, keep, drop, nPast, rope) -> Promise<void>
Napi::Value shift_context(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t keep = int_arg(info, 1, "keep"), drop = int_arg(info, 2, "drop"), n_past = int_arg(info, 3, "nPast");
    const RopeParams rope = rope_arg(info[4]);
    return queue_context_task(env, info[0], [=](Context& c) { c.shift(keep, drop, n_past, rope); });
  });
}

// saveContext(ctx, path, header, nPast) -> Promise<string>
Napi::Value save_context(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string path = string_arg(info, 1, "path"), header = string_arg(info, 2, "header");
    const int64_t n_past = int_arg(info, 3, "nPast");
    return queue_context_task(env, info[0], [=](Context& c) { c.save(path, header, n_past); });
  });
}

// loadContext(ctx, path, nPast) -> Promise<string>
Napi::Value load_context(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string path = string_arg(info, 1, "path");
    const int64_t n_past = int_arg(info, 2, "nPast");
    return queue_context_task(env, info[0], [=](Context& c) { c.load(path, n_past); });
  });
}

// readContextHeader(path) -> string (small: the header only)
Napi::Value read_context_header(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, Context::read_header(string_arg(info, 0, "path"))); });
}

Napi::Value cpu_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object out = Napi::Object::New(env);
    out.Set("detected", Napi::String::New(env, isa_name(detected_isa())));
    out.Set("active", Napi::String::New(env, isa_name(active_isa())));
    return out;
  });
}

}  // namespace

void register_engine(Napi::Env env, Napi::Object exports) {
  exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel"));
  exports.Set("disposeModel", Napi::Function::New(env, dispose_model, "disposeModel"));
  exports.Set("deriveLayout", Napi::Function::New(env, derive_layout, "deriveLayout"));
  exports.Set("createContext", Napi::Function::New(env, create_context, "createContext"));
  exports.Set("contextInfo", Napi::Function::New(env, context_info, "contextInfo"));
  exports.Set("disposeContext", Napi::Function::New(env, dispose_context, "disposeContext"));
  exports.Set("compileGraph", Napi::Function::New(env, compile_graph, "compileGraph"));
  exports.Set("measureGraph", Napi::Function::New(env, measure_graph, "measureGraph"));
  exports.Set("evaluate", Napi::Function::New(env, evaluate, "evaluate"));
  exports.Set("cpuInfo", Napi::Function::New(env, cpu_info, "cpuInfo"));
  exports.Set("shiftContext", Napi::Function::New(env, shift_context, "shiftContext"));
  exports.Set("saveContext", Napi::Function::New(env, save_context, "saveContext"));
  exports.Set("loadContext", Napi::Function::New(env, load_context, "loadContext"));
  exports.Set("readContextHeader", Napi::Function::New(env, read_context_header, "readContextHeader"));
}

}  // namespace deepmla::binding
